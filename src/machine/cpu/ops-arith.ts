// Opcode handlers: arith. (Filled in by the arith work.)
export {};
