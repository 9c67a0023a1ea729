/** Segment register indices, in the order of the x86 encoding. */
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
/** General register indices, in the order of the x86 encoding. */
export const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;

/** Exception vectors. */
export const Vec = {
  DE: 0, DB: 1, NMI: 2, BP: 3, OF: 4, BR: 5, UD: 6, NM: 7, DF: 8,
  TS: 10, NP: 11, SS: 12, GP: 13, PF: 14, MF: 16, AC: 17, MC: 18, XM: 19,
} as const;

/** CR0 bits. */
export const CR0_PE = 1, CR0_MP = 2, CR0_EM = 4, CR0_TS = 8, CR0_ET = 0x10, CR0_NE = 0x20,
  CR0_WP = 0x10000, CR0_AM = 0x40000, CR0_NW = 0x20000000, CR0_CD = 0x40000000, CR0_PG = 0x80000000;
/** CR4 bits. */
export const CR4_VME = 1, CR4_PVI = 2, CR4_TSD = 4, CR4_DE = 8, CR4_PSE = 0x10, CR4_PAE = 0x20,
  CR4_MCE = 0x40, CR4_PGE = 0x80, CR4_PCE = 0x100;

/** Segment access: data may be read / written through this segment register. */
export const SEG_READ = 1, SEG_WRITE = 2;

