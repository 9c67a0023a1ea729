import type { Cpu } from './cpu.js';

/** Executes one decoded instruction; prefixes and the opcode byte(s) are already consumed. */
export type Handler = (cpu: Cpu) => void;

/**
 * The dispatch table, indexed by opcode (0x000–0x0FF one-byte, 0x100–0x1FF for 0F xx),
 * plus 0x200 when the operand size is 32-bit. Opcode modules fill it at import time
 * through `defineOp`; every slot not defined stops the machine with the instruction's
 * disassembly (see `undefinedOpcode`).
 */
export const HANDLERS: Handler[] = new Array<Handler>(1024);

/** Marks what an opcode slot is, for tests and for the "what is implemented" listing. */
export const OP_KIND: string[] = new Array<string>(512).fill('');

const undefinedOpcode: Handler = (cpu) => {
  cpu.unsupported('opcode not implemented');
};
HANDLERS.fill(undefinedOpcode);

/**
 * Defines opcode `op` (0x00–0x1FF). `h32` defaults to `h16` for opcodes whose behaviour
 * does not depend on operand size, or that read `cpu.opsize32` themselves.
 */
export function defineOp(op: number, name: string, h16: Handler, h32: Handler = h16): void {
  if (op < 0 || op > 0x1ff) throw new RangeError(`opcode out of range: ${op.toString(16)}`);
  if (OP_KIND[op]) throw new Error(`opcode ${op.toString(16)} defined twice (${OP_KIND[op]}, ${name})`);
  OP_KIND[op] = name;
  HANDLERS[op] = h16;
  HANDLERS[op | 0x200] = h32;
}

/** True when `op` has a handler. */
export function isDefined(op: number): boolean {
  return OP_KIND[op] !== '';
}
