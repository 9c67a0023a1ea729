// Opcode handlers: control. (Filled in by the control work.)
export {};
