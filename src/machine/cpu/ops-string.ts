// Opcode handlers: string instructions (MOVS, CMPS, STOS, LODS, SCAS) with REP/REPE/REPNE,
// and the iteration helpers INS/OUTS (ops-io.ts) reuse.
//
// A REP instruction runs in batches: each handler call performs at most `repBatchLimit`
// iterations, updating (E)SI/(E)DI/(E)CX after every completed one, and if the count is not
// exhausted leaves EIP at the instruction so that it re-executes after the run loop has had
// the chance to service device events and interrupts. A fault in an iteration leaves the
// registers describing the completed iterations; the run loop restarts the instruction, which
// carries on with the remaining count — exactly the architectural restart behaviour.
//
// Accounting: a REP instruction is one retired instruction, and costs its base cost plus
// `repIteration` for every iteration beyond the first, whatever the batch size (a
// continuation undoes the instruction count and base cost the run loop charges again).
import type { Cpu } from './cpu.js';
import { ECX, EDI, ES, ESI, SEG_READ, SEG_WRITE, Vec } from './constants.js';
import { AF, ARITH, CF, DF, IF, OF, PARITY, SF, TF, ZF } from './flags.js';
import { defineOp } from './op-table.js';

/** Most iterations of a REP string instruction performed per handler call. */
export const REP_BATCH = 4096;

/** One iteration of a string instruction: accesses memory/ports and advances the index registers; may fault. */
export type StringStep = (cpu: Cpu) => void;

// ======================================================================================
// Index and counter registers (by ADDRESS size)
// ======================================================================================

/** (E)SI as an unsigned offset. */
export function stringSI(cpu: Cpu): number {
  return cpu.addrsize32 ? cpu.r32[ESI]! >>> 0 : cpu.r16[ESI << 1]!;
}

/** (E)DI as an unsigned offset. */
export function stringDI(cpu: Cpu): number {
  return cpu.addrsize32 ? cpu.r32[EDI]! >>> 0 : cpu.r16[EDI << 1]!;
}

/** Adds `delta` to (E)SI, wrapping at the address size. */
export function advanceSI(cpu: Cpu, delta: number): void {
  if (cpu.addrsize32) cpu.r32[ESI] = cpu.r32[ESI]! + delta; else cpu.r16[ESI << 1] = cpu.r16[ESI << 1]! + delta;
}

/** Adds `delta` to (E)DI, wrapping at the address size. */
export function advanceDI(cpu: Cpu, delta: number): void {
  if (cpu.addrsize32) cpu.r32[EDI] = cpu.r32[EDI]! + delta; else cpu.r16[EDI << 1] = cpu.r16[EDI << 1]! + delta;
}

/** The per-iteration index step for an element of `size` bytes: -size when DF is set. */
export function stringDelta(cpu: Cpu, size: number): number {
  return (cpu.flags & DF) !== 0 ? -size : size;
}

/** The REP counter, (E)CX, unsigned. */
export function stringCount(cpu: Cpu): number {
  return cpu.addrsize32 ? cpu.r32[ECX]! >>> 0 : cpu.r16[ECX << 1]!;
}

/** Writes the REP counter. */
export function setStringCount(cpu: Cpu, n: number): void {
  if (cpu.addrsize32) cpu.r32[ECX] = n; else cpu.r16[ECX << 1] = n;
}

/**
 * How many iterations this handler call may perform: one when single-stepping (TF traps
 * after each iteration, as on hardware) or when an interrupt is pending and enabled; else up
 * to REP_BATCH, fewer if a device event falls due sooner.
 */
export function repBatchLimit(cpu: Cpu): number {
  if ((cpu.flags & TF) !== 0 || (cpu.intrLine && (cpu.flags & IF) !== 0)) return 1;
  const per = cpu.cost.repIteration;
  const gap = cpu.nextEventCycle - cpu.cycles;
  if (per > 0 && gap < REP_BATCH * per) return gap <= per ? 1 : Math.ceil(gap / per);
  return REP_BATCH;
}

/** Charges `k` completed iterations; `doneBefore` says how many this call did already. */
function chargeIterations(cpu: Cpu, doneBefore: number, k: number): void {
  cpu.cycles += cpu.cost.repIteration * (doneBefore === 0 ? k - 1 : k);
}

/**
 * Leaves the instruction for re-execution with the count not yet exhausted: EIP back at the
 * instruction, and the retired-instruction count and base cost the run loop is about to
 * charge (and will charge again on re-execution) undone.
 */
function continueLater(cpu: Cpu, op: number): void {
  cpu.eip = cpu.instrStart;
  cpu.instructions--;
  cpu.cycles += cpu.cost.repIteration - cpu.cost.base[cpu.opsize32 ? op | 0x200 : op]!;
}

/**
 * Runs a string instruction whose iteration is `step`: once without a REP prefix; with one,
 * (E)CX times in batches (see the module comment). `testsZf`: CMPS/SCAS, which REPE (F3)
 * stops when ZF = 0 and REPNE (F2) when ZF = 1. `op` is the opcode (for cost accounting).
 */
export function runString(cpu: Cpu, step: StringStep, testsZf: boolean, op: number): void {
  if (cpu.rep === 0) { step(cpu); return; }
  let count = stringCount(cpu);
  if (count === 0) return;
  const limit = repBatchLimit(cpu);
  const stopOnZf = cpu.rep === 0xf3 ? 0 : ZF;
  for (let done = 0; ;) {
    step(cpu);
    count--;
    setStringCount(cpu, count);
    chargeIterations(cpu, done, 1);
    done++;
    if (count === 0) return;
    if (testsZf && (cpu.flags & ZF) === stopOnZf) return;
    if (done >= limit) { continueLater(cpu, op); return; }
  }
}

// ======================================================================================
// Single iterations
// ======================================================================================

function movs8(cpu: Cpu): void {
  const v = cpu.readMem8(cpu.dataSeg, stringSI(cpu));
  cpu.writeMem8(ES, stringDI(cpu), v);
  const d = (cpu.flags & DF) !== 0 ? -1 : 1;
  advanceSI(cpu, d); advanceDI(cpu, d);
}
function movs16(cpu: Cpu): void {
  const v = cpu.readMem16(cpu.dataSeg, stringSI(cpu));
  cpu.writeMem16(ES, stringDI(cpu), v);
  const d = (cpu.flags & DF) !== 0 ? -2 : 2;
  advanceSI(cpu, d); advanceDI(cpu, d);
}
function movs32(cpu: Cpu): void {
  const v = cpu.readMem32(cpu.dataSeg, stringSI(cpu));
  cpu.writeMem32(ES, stringDI(cpu), v);
  const d = (cpu.flags & DF) !== 0 ? -4 : 4;
  advanceSI(cpu, d); advanceDI(cpu, d);
}

function stos8(cpu: Cpu): void {
  cpu.writeMem8(ES, stringDI(cpu), cpu.r8[0]!);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -1 : 1);
}
function stos16(cpu: Cpu): void {
  cpu.writeMem16(ES, stringDI(cpu), cpu.r16[0]!);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -2 : 2);
}
function stos32(cpu: Cpu): void {
  cpu.writeMem32(ES, stringDI(cpu), cpu.r32[0]!);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -4 : 4);
}

function lods8(cpu: Cpu): void {
  cpu.r8[0] = cpu.readMem8(cpu.dataSeg, stringSI(cpu));
  advanceSI(cpu, (cpu.flags & DF) !== 0 ? -1 : 1);
}
function lods16(cpu: Cpu): void {
  cpu.r16[0] = cpu.readMem16(cpu.dataSeg, stringSI(cpu));
  advanceSI(cpu, (cpu.flags & DF) !== 0 ? -2 : 2);
}
function lods32(cpu: Cpu): void {
  cpu.r32[0] = cpu.readMem32(cpu.dataSeg, stringSI(cpu));
  advanceSI(cpu, (cpu.flags & DF) !== 0 ? -4 : 4);
}

/**
 * Sets the arithmetic flags as CMP a, b (a − b) at width `bits`; `a`, `b` are unsigned and
 * already truncated to the width.
 */
export function compareFlags(cpu: Cpu, a: number, b: number, bits: number): void {
  const res = bits === 32 ? (a - b) >>> 0 : (a - b) & ((1 << bits) - 1);
  const sh = bits - 1;
  let f = PARITY[res & 0xff]!;
  if (a < b) f |= CF;
  if (res === 0) f |= ZF;
  if (((res >>> sh) & 1) !== 0) f |= SF;
  if (((((a ^ b) & (a ^ res)) >>> sh) & 1) !== 0) f |= OF;
  f |= (a ^ b ^ res) & AF;
  cpu.flags = (cpu.flags & ~ARITH) | f;
}

// CMPS compares [seg:SI] − [ES:DI] (source minus destination).
function cmps8(cpu: Cpu): void {
  const a = cpu.readMem8(cpu.dataSeg, stringSI(cpu));
  const b = cpu.readMem8(ES, stringDI(cpu));
  compareFlags(cpu, a, b, 8);
  const d = (cpu.flags & DF) !== 0 ? -1 : 1;
  advanceSI(cpu, d); advanceDI(cpu, d);
}
function cmps16(cpu: Cpu): void {
  const a = cpu.readMem16(cpu.dataSeg, stringSI(cpu));
  const b = cpu.readMem16(ES, stringDI(cpu));
  compareFlags(cpu, a, b, 16);
  const d = (cpu.flags & DF) !== 0 ? -2 : 2;
  advanceSI(cpu, d); advanceDI(cpu, d);
}
function cmps32(cpu: Cpu): void {
  const a = cpu.readMem32(cpu.dataSeg, stringSI(cpu)) >>> 0;
  const b = cpu.readMem32(ES, stringDI(cpu)) >>> 0;
  compareFlags(cpu, a, b, 32);
  const d = (cpu.flags & DF) !== 0 ? -4 : 4;
  advanceSI(cpu, d); advanceDI(cpu, d);
}

// SCAS compares eAX − [ES:DI].
function scas8(cpu: Cpu): void {
  const b = cpu.readMem8(ES, stringDI(cpu));
  compareFlags(cpu, cpu.r8[0]!, b, 8);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -1 : 1);
}
function scas16(cpu: Cpu): void {
  const b = cpu.readMem16(ES, stringDI(cpu));
  compareFlags(cpu, cpu.r16[0]!, b, 16);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -2 : 2);
}
function scas32(cpu: Cpu): void {
  const b = cpu.readMem32(ES, stringDI(cpu)) >>> 0;
  compareFlags(cpu, cpu.r32[0]! >>> 0, b, 32);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -4 : 4);
}

// ======================================================================================
// Bulk fast paths for REP MOVS / REP STOS
// ======================================================================================

/**
 * How many consecutive elements, starting with the one at `seg:off` and going in the
 * direction of DF, lie inside one page, inside the segment limits, without wrapping the
 * 16-bit offset, in a segment that allows the access. 0 when the first element does not
 * qualify (the caller then takes the per-element path, which raises the right fault).
 */
function runInPage(cpu: Cpu, seg: number, off: number, size: number, back: boolean, rights: number): number {
  if ((cpu.segRW[seg]! & rights) === 0) return 0;
  const lo = cpu.segLo[seg]!;
  const hi = cpu.addrsize32 ? cpu.segHi[seg]! : Math.min(cpu.segHi[seg]!, 0xffff);
  if (off < lo || off + size - 1 > hi) return 0;
  const pageOff = (cpu.segBase[seg]! + off) & 0xfff;
  if (pageOff + size > 4096) return 0;
  if (back) {
    const byPage = ((pageOff / size) | 0) + 1;
    const bySeg = (((off - lo) / size) | 0) + 1;
    return byPage < bySeg ? byPage : bySeg;
  }
  const byPage = ((4096 - pageOff) / size) | 0;
  const bySeg = Math.floor((hi - off + 1) / size);
  return byPage < bySeg ? byPage : bySeg;
}

/**
 * Copies up to `n` MOVS elements at once when source and destination each stay within one
 * page; returns the number copied (0: take the per-element path). Overlapping ranges where
 * a bulk move would differ from element-by-element order are copied in that order.
 */
function movsBulk(cpu: Cpu, size: number, n: number): number {
  const back = (cpu.flags & DF) !== 0;
  const srcSeg = cpu.dataSeg;
  const si = stringSI(cpu), di = stringDI(cpu);
  let k = runInPage(cpu, srcSeg, si, size, back, SEG_READ);
  if (k < 2) return 0;
  const kd = runInPage(cpu, ES, di, size, back, SEG_WRITE);
  if (kd < k) k = kd;
  if (n < k) k = n;
  if (k < 2) return 0;
  const user = cpu.cpl === 3;
  // Translate in the order the first iteration accesses memory: read source, write destination.
  const ps = cpu.translate(cpu.segBase[srcSeg]! + si, false, user);
  const pd = cpu.translate(cpu.segBase[ES]! + di, true, user);
  const bytes = k * size;
  const span = (k - 1) * size;
  const sLo = back ? ps - span : ps;
  const dLo = back ? pd - span : pd;
  const mem = cpu.mem;
  if (sLo + bytes > mem.size || dLo + bytes > mem.size) return 0;
  const u8 = mem.u8;
  if (back ? (dLo >= sLo || dLo + bytes <= sLo) : (dLo <= sLo || dLo >= sLo + bytes)) {
    u8.copyWithin(dLo, sLo, sLo + bytes);
  } else if (size === 1) {
    if (back) for (let i = bytes - 1; i >= 0; i--) u8[dLo + i] = u8[sLo + i]!;
    else for (let i = 0; i < bytes; i++) u8[dLo + i] = u8[sLo + i]!;
  } else {
    // Element order, each element read whole before it is written.
    const step = back ? -size : size;
    let s = ps, d = pd;
    for (let j = 0; j < k; j++, s += step, d += step) {
      const v = size === 2 ? mem.read16(s) : mem.read32(s);
      if (size === 2) mem.write16(d, v); else mem.write32(d, v);
    }
  }
  const delta = back ? -bytes : bytes;
  advanceSI(cpu, delta);
  advanceDI(cpu, delta);
  return k;
}

/** Fills up to `n` STOS elements at once within one page; returns the number stored (0: per-element path). */
function stosBulk(cpu: Cpu, size: number, n: number): number {
  const back = (cpu.flags & DF) !== 0;
  const di = stringDI(cpu);
  let k = runInPage(cpu, ES, di, size, back, SEG_WRITE);
  if (n < k) k = n;
  if (k < 2) return 0;
  const pd = cpu.translate(cpu.segBase[ES]! + di, true, cpu.cpl === 3);
  const bytes = k * size;
  const dLo = back ? pd - (k - 1) * size : pd;
  const mem = cpu.mem;
  if (dLo + bytes > mem.size) return 0;
  if (size === 1) {
    mem.u8.fill(cpu.r8[0]!, dLo, dLo + bytes);
  } else if (size === 4 && (dLo & 3) === 0) {
    mem.i32.fill(cpu.r32[0]!, dLo >>> 2, (dLo + bytes) >>> 2);
  } else if (size === 4) {
    const v = cpu.r32[0]!;
    for (let p = dLo; p < dLo + bytes; p += 4) mem.write32(p, v);
  } else {
    const v = cpu.r16[0]!;
    for (let p = dLo; p < dLo + bytes; p += 2) mem.write16(p, v);
  }
  advanceDI(cpu, back ? -bytes : bytes);
  return k;
}

/**
 * REPE/REPNE CMPS and SCAS over up to `n` elements within one page for each pointer, reading
 * physical memory directly; stops after the element that ends the repetition. Returns the
 * number of iterations performed (0: take the per-element path); the flags are those of the
 * last comparison, as if each had been executed.
 */
function scanBulk(cpu: Cpu, size: number, n: number, isCmps: boolean): number {
  const back = (cpu.flags & DF) !== 0;
  const di = stringDI(cpu);
  let k = runInPage(cpu, ES, di, size, back, SEG_READ);
  const srcSeg = cpu.dataSeg;
  const si = isCmps ? stringSI(cpu) : 0;
  if (isCmps) {
    const ks = runInPage(cpu, srcSeg, si, size, back, SEG_READ);
    if (ks < k) k = ks;
  }
  if (n < k) k = n;
  if (k < 2) return 0;
  const user = cpu.cpl === 3;
  const mem = cpu.mem;
  const span = (k - 1) * size;
  // CMPS reads the source first.
  const ps = isCmps ? cpu.translate(cpu.segBase[srcSeg]! + si, false, user) : 0;
  const pd = cpu.translate(cpu.segBase[ES]! + di, false, user);
  if ((back ? pd : pd + span) + size > mem.size || (back ? ps : ps + span) + size > mem.size) return 0;
  const stopWhenEqual = cpu.rep === 0xf2;
  const step = back ? -size : size;
  const acc = size === 1 ? cpu.r8[0]! : size === 2 ? cpu.r16[0]! : cpu.r32[0]!;
  let a = 0, b = 0, i = 0;
  if (size === 1) {
    const u8 = mem.u8;
    while (i < k) {
      a = isCmps ? u8[ps + i * step]! : acc;
      b = u8[pd + i * step]!;
      i++;
      if ((a === b) === stopWhenEqual) break;
    }
  } else {
    while (i < k) {
      a = isCmps ? (size === 2 ? mem.read16(ps + i * step) : mem.read32(ps + i * step)) : acc;
      b = size === 2 ? mem.read16(pd + i * step) : mem.read32(pd + i * step);
      i++;
      if ((a === b) === stopWhenEqual) break;
    }
  }
  compareFlags(cpu, a >>> 0, b >>> 0, size * 8);
  if (isCmps) advanceSI(cpu, i * step);
  advanceDI(cpu, i * step);
  return i;
}

/** REPE/REPNE CMPS and SCAS: page-sized scans where possible, single iterations elsewhere. */
function repScan(cpu: Cpu, size: number, isCmps: boolean, step: StringStep, op: number): void {
  let count = stringCount(cpu);
  if (count === 0) return;
  const limit = repBatchLimit(cpu);
  const stopOnZf = cpu.rep === 0xf3 ? 0 : ZF;
  for (let done = 0; ;) {
    const room = limit - done;
    const n = count < room ? count : room;
    let k = n > 1 ? scanBulk(cpu, size, n, isCmps) : 0;
    if (k === 0) { step(cpu); k = 1; }
    count -= k;
    setStringCount(cpu, count);
    chargeIterations(cpu, done, k);
    done += k;
    if (count === 0) return;
    if ((cpu.flags & ZF) === stopOnZf) return;
    if (done >= limit) { continueLater(cpu, op); return; }
  }
}

/**
 * REP MOVS / REP STOS: bulk chunks (one page at a time for each pointer) where possible,
 * single iterations where an element straddles a page or the segment limit, so that faults
 * are raised by exactly the element that causes them.
 */
function repBulk(cpu: Cpu, size: number, isMovs: boolean, step: StringStep, op: number): void {
  let count = stringCount(cpu);
  if (count === 0) return;
  const limit = repBatchLimit(cpu);
  for (let done = 0; ;) {
    const room = limit - done;
    const n = count < room ? count : room;
    let k = n > 1 ? (isMovs ? movsBulk(cpu, size, n) : stosBulk(cpu, size, n)) : 0;
    if (k === 0) { step(cpu); k = 1; }
    count -= k;
    setStringCount(cpu, count);
    chargeIterations(cpu, done, k);
    done += k;
    if (count === 0) return;
    if (done >= limit) { continueLater(cpu, op); return; }
  }
}

/** LOCK on a string instruction: #UD (P6). */
function lockUD(cpu: Cpu): never {
  cpu.raise(Vec.UD);
}

// ======================================================================================
// Opcodes
// ======================================================================================

defineOp(0xa4, 'MOVSB', (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) movs8(cpu); else repBulk(cpu, 1, true, movs8, 0xa4); });
defineOp(0xa5, 'MOVSW',
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) movs16(cpu); else repBulk(cpu, 2, true, movs16, 0xa5); },
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) movs32(cpu); else repBulk(cpu, 4, true, movs32, 0xa5); });
defineOp(0xaa, 'STOSB', (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) stos8(cpu); else repBulk(cpu, 1, false, stos8, 0xaa); });
defineOp(0xab, 'STOSW',
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) stos16(cpu); else repBulk(cpu, 2, false, stos16, 0xab); },
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) stos32(cpu); else repBulk(cpu, 4, false, stos32, 0xab); });
defineOp(0xa6, 'CMPSB', (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) cmps8(cpu); else repScan(cpu, 1, true, cmps8, 0xa6); });
defineOp(0xa7, 'CMPSW',
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) cmps16(cpu); else repScan(cpu, 2, true, cmps16, 0xa7); },
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) cmps32(cpu); else repScan(cpu, 4, true, cmps32, 0xa7); });
defineOp(0xac, 'LODSB', (cpu) => { if (cpu.lock) lockUD(cpu); runString(cpu, lods8, false, 0xac); });
defineOp(0xad, 'LODSW', (cpu) => { if (cpu.lock) lockUD(cpu); runString(cpu, lods16, false, 0xad); }, (cpu) => { if (cpu.lock) lockUD(cpu); runString(cpu, lods32, false, 0xad); });
defineOp(0xae, 'SCASB', (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) scas8(cpu); else repScan(cpu, 1, false, scas8, 0xae); });
defineOp(0xaf, 'SCASW',
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) scas16(cpu); else repScan(cpu, 2, false, scas16, 0xaf); },
  (cpu) => { if (cpu.lock) lockUD(cpu); if (cpu.rep === 0) scas32(cpu); else repScan(cpu, 4, false, scas32, 0xaf); });
