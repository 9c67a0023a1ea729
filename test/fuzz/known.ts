/**
 * Seeds whose programs differ between QEMU 7.2 and virtlab where the SDM says virtlab is
 * right (QEMU's TCG is wrong), each with the reason. The corpus stores virtlab's (SDM)
 * result for these; see docs/fuzzing.md.
 */
export const KNOWN_QEMU_DIFFERENCES: Readonly<Record<string, string>> = {};
