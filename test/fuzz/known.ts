/**
 * Seeds whose programs differ between QEMU 7.2 and virtlab where the SDM says virtlab is
 * right (QEMU's TCG is wrong), each with the reason. For these the corpus stores virtlab's
 * result, checked by hand against the SDM; see docs/fuzzing.md.
 */
export const KNOWN_QEMU_DIFFERENCES: Readonly<Record<string, string>> = {
  '2086': 'RCR dword [mem], 1 faulting (#PF, read-only page): QEMU pushes an EFLAGS image computed '
    + 'from its lazy-flags state after partly evaluating RCR; a fault leaves EFLAGS as before the '
    + 'instruction (SDM Vol. 3 6.5 "faults": state restored so the instruction can be restarted).',
};
