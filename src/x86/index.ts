/** The x86 assembler API in one import: `import { Assembler, eax, dword } from '../x86/index.js'`. */
export * from './assembler.js';
export * from './operands.js';
export { PVOP_KINDS, isPvopKind, checkPvopBody, disassembleAll, type PvopKind, type PvopSite } from './pvop.js';
