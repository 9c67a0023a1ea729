// Opcode handlers: string. (Filled in by the string work.)
export {};
