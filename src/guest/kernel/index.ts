/** The virtlab guest kernel: builder, user-program API, layout and system-call ABI. See docs/kernel.md. */
export { buildKernel, type ExtraSyscall, type KernelOptions, type Kx } from './kernel.js';
export { assembleProgram, UserBuilder, type AssembledProgram, type SyscallPath, type UserProgram } from './user.js';
export * from './layout.js';
export { NPIPE, PIPE_BYTES } from './pipes.js';
