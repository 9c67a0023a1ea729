/**
 * fast-check arbitraries for the verifier's guests (guest-program.ts): instructions over the
 * implemented ISA, sensitive and privileged ones included; kernel-level actions (page-table
 * writes with arbitrary frame numbers, CR3 switches, accesses through the changed mappings,
 * port accesses, DMA descriptors pointing anywhere); whole programs. Every arbitrary shrinks
 * towards fewer, simpler items (fast-check's array and record shrinking), so a
 * counterexample ends as a minimal program (`listing` prints it as disassembly).
 */
import fc from 'fast-check';
import {
  ALU_OPS, FAR_CALL_SELECTORS, FAR_JMP_SELECTORS, INT_VECTORS, LAYOUT, POP_SEGS, PROBE_SELECTORS, REGS, SHIFT_OPS, UNARY_OPS,
  type Act, type GuestProgram, type Ins, type Item, type RegName,
} from './guest-program.js';

/** A 32-bit value with interesting bit patterns more often than uniform. */
export const value32 = (): fc.Arbitrary<number> => fc.oneof(
  fc.constantFrom(0, 1, -1, 0x7fffffff, -0x80000000, 0x80, 0xff, 0x8000, 0xffff),
  fc.integer({ min: -64, max: 64 }),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }),
);

const reg = (): fc.Arbitrary<RegName> => fc.constantFrom(...REGS);
const off = (): fc.Arbitrary<number> => fc.integer({ min: 0, max: 0x3ff }).map((w) => w * 4);
const probeSelector = (): fc.Arbitrary<number> => fc.oneof(fc.constantFrom(...PROBE_SELECTORS), fc.integer({ min: 0, max: 0xffff }));

/** Unprivileged, non-sensitive instructions (identical in every mode by construction). */
export const plainInstruction = (): fc.Arbitrary<Ins> => fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('alu' as const), f: fc.constantFrom(...ALU_OPS), d: reg(), s: reg() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('alui' as const), f: fc.constantFrom(...ALU_OPS), d: reg(), imm: value32() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('movi' as const), d: reg(), imm: value32() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shift' as const), f: fc.constantFrom(...SHIFT_OPS), d: reg(), n: fc.integer({ min: 0, max: 31 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unary' as const), f: fc.constantFrom(...UNARY_OPS), d: reg() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('imul' as const), d: reg(), s: reg() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('load' as const), d: reg(), off: off() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('store' as const), s: reg(), off: off() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pushpop' as const), s: reg(), d: reg() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('out' as const), v: fc.integer({ min: 0x20, max: 0x7e }) }) },
);

/**
 * Sensitive unprivileged instructions (they read privileged state without trapping when
 * deprivileged) and privileged ones (they trap and are emulated). `exclude` names ops to
 * leave out (`movsreg:cs` for one segment register); `flat`: for the flat harness (selector
 * probes with every RPL of its descriptors).
 */
export const systemInstruction = (exclude: ReadonlySet<string> = new Set(), flat = false): fc.Arbitrary<Ins> | null => {
  const ok = (op: string): boolean => !exclude.has(op);
  // Flat harness: LAR/LSL/VERR/VERW also probe every RPL of each descriptor of its GDT and LDT
  // (an RPL above a DPL-0 descriptor's is where DPL compression shows).
  const selector = flat
    ? (): fc.Arbitrary<number> => fc.oneof({ weight: 1, arbitrary: probeSelector() }, { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...SEGMENT_BASES), fc.integer({ min: 0, max: 3 })).map(([b, rpl]) => b | rpl) })
    : probeSelector;
  const pick = <T extends string>(...ops: T[]): T[] => ops.filter(ok);
  const arbs: fc.Arbitrary<Ins>[] = [];
  if (ok('pushf')) arbs.push(fc.record({ op: fc.constant('pushf' as const), d: reg() }));
  if (ok('popf')) arbs.push(fc.record({ op: fc.constant('popf' as const), imm: fc.oneof(fc.constantFrom(0x2, 0x202, 0x3002, 0x3202, 0x1202, 0x2046, 0x200202), value32()) }));
  const tables = pick('sgdt', 'sidt');
  if (tables.length > 0) arbs.push(fc.record({ op: fc.constantFrom(...tables), off: off() }));
  const stores = pick('sldt', 'str', 'smsw');
  if (stores.length > 0) arbs.push(fc.record({ op: fc.constantFrom(...stores), d: reg() }));
  const probes = pick('lar', 'lsl');
  if (probes.length > 0) arbs.push(fc.record({ op: fc.constantFrom(...probes), d: reg(), sel: selector() }));
  const verify = pick('verr', 'verw');
  // (Flat harness: one arm each, as LAR and LSL share one — they set only ZF, rarely seen.)
  if (flat) for (const op of verify) arbs.push(fc.record({ op: fc.constant(op), d: reg(), sel: selector() }));
  else if (verify.length > 0) arbs.push(fc.record({ op: fc.constantFrom(...verify), d: reg(), sel: selector() }));
  const segs = (['cs', 'ss', 'ds'] as const).filter((g) => ok(`movsreg:${g}`) && ok('movsreg'));
  if (segs.length > 0) arbs.push(fc.record({ op: fc.constant('movsreg' as const), d: reg(), seg: fc.constantFrom(...segs), off: off() }, { requiredKeys: ['op', 'd', 'seg'] }));
  const ints = pick('cli', 'sti');
  if (ints.length > 0) arbs.push(fc.record({ op: fc.constantFrom(...ints) }) as fc.Arbitrary<Ins>);
  const psegs = (['cs', 'ss', 'ds'] as const).filter((g) => ok(`pushseg:${g}`) && ok('pushseg'));
  if (psegs.length > 0) arbs.push(fc.record({ op: fc.constant('pushseg' as const), d: reg(), seg: fc.constantFrom(...psegs) }));
  if (ok('farret')) arbs.push(fc.record({ op: fc.constant('farret' as const) }));
  if (ok('crread')) arbs.push(fc.record({ op: fc.constant('crread' as const), d: reg(), cr: fc.constantFrom(0 as const, 2 as const, 3 as const, 4 as const) }));
  // Far transfers, INT n and segment loads share one arm (and the ring transition has one), so
  // that the other sensitive instructions keep their share of the programs.
  const far = farTransfers(exclude, FAR_CALL_SELECTORS, FAR_JMP_SELECTORS, INT_VECTORS, POP_BASES);
  if (far.length > 0) arbs.push(fc.oneof(...far));
  if (ok('ring3')) arbs.push(ring3Item(exclude));
  return arbs.length === 0 ? null : fc.oneof(...arbs);
};

/** The flat harness's code and data descriptors (GDT and LDT), for LAR/LSL/VERR/VERW with every RPL. */
const SEGMENT_BASES = [0x08, 0x10, 0x18, 0x20, 0x38, 0x40, 0x58, 0x04] as const;

/** Descriptor selectors (RPL 0) whose RPL variants POP DS/ES/FS/GS loads: every harness descriptor, the LDT's, one past the limit. */
const POP_BASES = [0, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x58, 0x04, 0x70] as const;

/**
 * Far CALL/JMP (direct ptr16:32 or indirect m16:32), INT n and POP of a data segment
 * register, with the given targets (`exclude` as `systemInstruction`'s).
 */
function farTransfers(exclude: ReadonlySet<string>, calls: readonly number[], jmps: readonly number[], ints: readonly number[], pops: readonly number[]): fc.Arbitrary<Ins>[] {
  const arbs: fc.Arbitrary<Ins>[] = [];
  if (!exclude.has('farcall')) arbs.push(fc.record({ op: fc.constant('farcall' as const), sel: fc.constantFrom(...calls), ind: fc.boolean() }, { requiredKeys: ['op', 'sel'] }));
  if (!exclude.has('farjmp')) arbs.push(fc.record({ op: fc.constant('farjmp' as const), sel: fc.constantFrom(...jmps), ind: fc.boolean() }, { requiredKeys: ['op', 'sel'] }));
  if (!exclude.has('int')) arbs.push(fc.record({ op: fc.constant('int' as const), n: fc.constantFrom(...ints) }));
  if (!exclude.has('popseg')) {
    arbs.push(fc.record({
      op: fc.constant('popseg' as const), seg: fc.constantFrom(...POP_SEGS),
      sel: fc.tuple(fc.constantFrom(...pops), fc.integer({ min: 0, max: 3 })).map(([b, rpl]) => b | rpl),
    }));
  }
  return arbs;
}

/**
 * Instructions for a ring-3 body: plain ones (no port output: it would #GP), far CALL/JMP to
 * what ring 3 can reach (conforming code, ring-3 code, the DPL-3 call gate — a ring
 * transition to ring 0 and back — and some that fault), INT n through the DPL-3 gates (and
 * the DPL-0 one: #GP), segment loads, MOV from CS/SS/DS and PUSH CS/SS/DS. No PUSHF/POPF,
 * descriptor-table or LAR-family reads: in user mode they show the monitors' real state by
 * design (user-equivalence lists them).
 */
export const ring3Instruction = (exclude: ReadonlySet<string> = new Set()): fc.Arbitrary<Ins> => {
  const arbs: fc.Arbitrary<Ins>[] = [plainInstruction().filter((i) => i.op !== 'out')];
  arbs.push(...farTransfers(exclude, [0x43, 0x4b, 0x48, 0x63, 0x23, 0x08], [0x43, 0x23, 0x6b, 0x08], [0x31, 0x32, 0x30, 0x33], [0x18, 0x20, 0x40, 0x10, 0, 0x04, 0x38]));
  const segs = (['cs', 'ss', 'ds'] as const).filter((g) => !exclude.has(`movsreg:${g}`) && !exclude.has('movsreg'));
  if (segs.length > 0) arbs.push(fc.record({ op: fc.constant('movsreg' as const), d: reg(), seg: fc.constantFrom(...segs) }));
  const psegs = (['cs', 'ss', 'ds'] as const).filter((g) => !exclude.has(`pushseg:${g}`) && !exclude.has('pushseg'));
  if (psegs.length > 0) arbs.push(fc.record({ op: fc.constant('pushseg' as const), d: reg(), seg: fc.constantFrom(...psegs) }));
  return fc.oneof({ weight: 3, arbitrary: arbs[0]! }, ...arbs.slice(1).map((arbitrary) => ({ weight: 1, arbitrary })));
};

/**
 * A ring transition (`ring3` item): RET far or IRET (EFLAGS image with IF set, IOPL 0, random
 * arithmetic flags) to ring 3, a short body there, back through the DPL-3 call gate.
 */
export const ring3Item = (exclude: ReadonlySet<string> = new Set()): fc.Arbitrary<Ins> =>
  fc.record({
    op: fc.constant('ring3' as const),
    fl: fc.integer({ min: 0, max: 0xfff }).map((f) => ((f & 0x8d5) | 0x202) >>> 0),
    body: fc.array(ring3Instruction(exclude), { maxLength: 4 }),
  }, { requiredKeys: ['op', 'body'] });

/** A counted loop long enough for timer interrupts to arrive during it (one PIT period is about 4 000 instructions natively). */
export const longLoop = (): fc.Arbitrary<Ins> =>
  fc.record({ op: fc.constant('loop' as const), n: fc.integer({ min: 300, max: 3000 }), body: fc.array(plainInstruction().filter((i) => i.op !== 'out'), { minLength: 1, maxLength: 4 }) });

/** A CLI … STI region (`clisti`): plain instructions and long loops, during which no interrupt may reach the guest. */
export const cliRegion = (): fc.Arbitrary<Ins> =>
  fc.record({ op: fc.constant('clisti' as const), body: fc.array(fc.oneof({ weight: 1, arbitrary: plainInstruction() }, { weight: 2, arbitrary: longLoop() }), { minLength: 1, maxLength: 3 }) });

/** Any instruction: mostly plain, some system ones, sometimes a counted loop of plain ones. */
export const instruction = (systemWeight = 1, exclude: ReadonlySet<string> = new Set(), flat = false): fc.Arbitrary<Ins> => {
  const sys = systemWeight > 0 ? systemInstruction(exclude, flat) : null;
  const loop = fc.record({ op: fc.constant('loop' as const), n: fc.integer({ min: 1, max: 4 }), body: fc.array(plainInstruction(), { minLength: 1, maxLength: 4 }) });
  return sys === null
    ? fc.oneof({ weight: 6, arbitrary: plainInstruction() }, { weight: 1, arbitrary: loop })
    : fc.oneof({ weight: 6, arbitrary: plainInstruction() }, { weight: systemWeight, arbitrary: sys }, { weight: 1, arbitrary: loop });
};

const GUEST_FRAMES = (LAYOUT.guestMiB << 20) >>> 12;

/**
 * A frame number for a page-table entry: the guest's own pages of interest (data, page
 * tables, code, descriptor tables), anywhere in its RAM, its last frames, just beyond its RAM
 * (monitor memory under a monitor), or far away.
 */
export const frameNumber = (): fc.Arbitrary<number> => fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(0x200, 0x201, 0x202, 0x300, 0x301, 0x302, 0x303, 0x304, 0x10, 0x13, 0x500, 0x510) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: GUEST_FRAMES - 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: GUEST_FRAMES - 4, max: GUEST_FRAMES + 16 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfffff }) },
);

/** A playground page: mostly one of two, so that a mapping change and an access meet often. */
const page = (): fc.Arbitrary<number> => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: LAYOUT.playgroundPages - 1 }) });

/** Kernel-level actions on paging and ports (no DMA: see `dmaAction`). */
export const kernelAction = (): fc.Arbitrary<Act> => fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('pte' as const), t: fc.constantFrom(0 as const, 1 as const), page: page(), frame: frameNumber(), flags: fc.oneof(fc.constant(7), fc.integer({ min: 0, max: 7 })), touch: fc.boolean() }, { requiredKeys: ['op', 't', 'page', 'frame', 'flags'] }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cr3' as const), t: fc.constantFrom(0 as const, 1 as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('rd' as const), d: reg(), page: page(), off: off() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('wr' as const), s: reg(), page: page(), off: off() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('port' as const), port: fc.constantFrom(0xe9, 0x80, 0xe0, 0xed), v: fc.integer({ min: 0, max: 255 }) }) },
);

/** A DMA descriptor pointing anywhere: PRD table and buffer in RAM, at its end, or beyond. */
export const dmaAction = (): fc.Arbitrary<Act> => {
  const addr = fc.oneof(
    fc.integer({ min: 0x600, max: 0x7ff }).map((f) => f * 0x1000),
    fc.integer({ min: -2, max: 8 }).map((k) => ((LAYOUT.guestMiB << 20) + k * 0x200) >>> 0),
    fc.integer({ min: 0, max: 0xfffff }).map((f) => (f * 0x1000) >>> 0),
  );
  return fc.record({ op: fc.constant('dma' as const), prd: addr, buf: addr, bytes: fc.constantFrom(512, 0x1000, 0x2000) });
};

/** Initial values of the seven registers a program may use. */
export const registers = (): fc.Arbitrary<number[]> => fc.array(value32(), { minLength: REGS.length, maxLength: REGS.length });

/**
 * Programs of user-level and system instructions, paging off. `timer`: timer interrupts on
 * (GuestProgram.timer), with CLI … STI regions and long loops among the items.
 */
export const guestProgram = (options: { maxLength?: number; systemWeight?: number; exclude?: ReadonlySet<string>; timer?: boolean } = {}): fc.Arbitrary<GuestProgram> => {
  const ins = instruction(options.systemWeight ?? 1, options.exclude, true) as fc.Arbitrary<Item>;
  if (options.timer !== true) {
    return fc.record({ regs: registers(), items: fc.array(ins, { minLength: 1, maxLength: options.maxLength ?? 24 }), paging: fc.constant(false) });
  }
  const clisti = options.exclude?.has('clisti') === true ? [] : [{ weight: 2, arbitrary: cliRegion() as fc.Arbitrary<Item> }];
  const item = fc.oneof({ weight: 4, arbitrary: ins }, { weight: 2, arbitrary: longLoop() as fc.Arbitrary<Item> }, ...clisti);
  return fc.record({ regs: registers(), items: fc.array(item, { minLength: 1, maxLength: options.maxLength ?? 12 }), paging: fc.constant(false), timer: fc.constant(true) });
};

/** Programs mixing instructions and kernel-level actions, paging on (two address spaces). */
export const kernelProgram = (options: { maxLength?: number; dma?: boolean; systemWeight?: number } = {}): fc.Arbitrary<GuestProgram> => {
  const item: fc.Arbitrary<Item> = options.dma
    ? fc.oneof({ weight: 2, arbitrary: kernelAction() as fc.Arbitrary<Item> }, { weight: 1, arbitrary: dmaAction() as fc.Arbitrary<Item> }, { weight: 1, arbitrary: plainInstruction() as fc.Arbitrary<Item> })
    : fc.oneof({ weight: 3, arbitrary: kernelAction() as fc.Arbitrary<Item> }, { weight: 2, arbitrary: instruction(options.systemWeight ?? 0) as fc.Arbitrary<Item> });
  return fc.record({ regs: registers(), items: fc.array(item, { minLength: 1, maxLength: options.maxLength ?? 24 }), paging: fc.constant(true) });
};

/**
 * VM B's secret for the noninterference property: data it stores and pages it touches
 * (uniformly over the playground, so its TLB footprint varies), paging on.
 */
export const secretProgram = (): fc.Arbitrary<GuestProgram> => {
  const anyPage = fc.integer({ min: 0, max: LAYOUT.playgroundPages - 1 });
  const item: fc.Arbitrary<Item> = fc.oneof(
    fc.record({ op: fc.constant('rd' as const), d: reg(), page: anyPage, off: off() }),
    fc.record({ op: fc.constant('store' as const), s: reg(), off: off() }),
    kernelAction() as fc.Arbitrary<Item>,
  );
  return fc.record({ regs: registers(), items: fc.array(item, { maxLength: 16 }), paging: fc.constant(true) });
};
