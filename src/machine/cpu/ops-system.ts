// Opcode handlers: system. (Filled in by the system work.)
export {};
