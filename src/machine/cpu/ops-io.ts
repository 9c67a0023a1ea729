// Opcode handlers: io. (Filled in by the io work.)
export {};
