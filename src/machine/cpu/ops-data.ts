// Opcode handlers: data. (Filled in by the data work.)
export {};
