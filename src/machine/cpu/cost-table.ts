/**
 * The cycle costs the CPU charges, flattened from a profile for the hot loop: a base cost per
 * handler-table index (opcode | 0x100 for 0F xx | 0x200 for 32-bit operand size) and a few
 * per-event costs. Built by `src/profiles/` from a profile file; every figure there has a source.
 */
export interface CostTable {
  /** Base cycles per handler index (1024 entries). */
  readonly base: Uint16Array;
  /** Extra cycles for an instruction with a memory operand. */
  readonly memOperand: number;
  /** Cycles per memory reference of a page walk (TLB miss). */
  readonly walkRef: number;
  /** Cycles per iteration of a REP string instruction, beyond the first. */
  readonly repIteration: number;
  /** Extra cycles when a branch is taken. */
  readonly branchTaken: number;
  /** Cycles to deliver an interrupt or exception (real mode / same privilege). */
  readonly interrupt: number;
  /** Extra cycles when an interrupt, call gate or IRET changes privilege (stack switch). */
  readonly privilegeChange: number;
  /** Cycles of a port I/O access. */
  readonly io: number;
  /** Cycles charged for a segment register load in protected mode (descriptor read). */
  readonly segmentLoad: number;
  /**
   * Extra cycles for members of opcode groups that cost more than the group's base class
   * (F6/F7 MUL/DIV, FF CALL/JMP, 0F 01 INVLPG, ...), indexed by `(handlerIndex << 3) | reg`
   * (8192 entries); charged by the group's handler through `Cpu.chargeGroup`.
   */
  readonly groupExtra: Uint16Array;
}

/** A flat cost table, for tests that only need a machine that counts instructions. */
export function unitCostTable(): CostTable {
  return {
    base: new Uint16Array(1024).fill(1),
    memOperand: 0,
    walkRef: 0,
    repIteration: 1,
    branchTaken: 0,
    interrupt: 0,
    privilegeChange: 0,
    io: 0,
    segmentLoad: 0,
    groupExtra: new Uint16Array(8192),
  };
}
