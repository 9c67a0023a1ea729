/**
 * Runs the external 80286 real-mode single-instruction vectors (SingleStepTests 80286 v1,
 * real-mode subset, see /work/shared/conformance/README.md) against virtlab's CPU.
 *
 * One `Cpu` is reused across vectors; memory writes are tracked in 256-byte lines so that
 * only the bytes a vector touched are cleared afterwards (re-allocating 16 MiB per vector
 * would dominate the run time), and so that writes to addresses the vector does not expect
 * to change are reported.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Cpu, CS, DS, ES, FS, GS, SS } from '../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../src/machine/cpu/cost-table.js';
import { HANDLERS, isDefined } from '../../src/machine/cpu/op-table.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';
import { rulesFor, type VectorRules } from './exclusions.js';

// ------------------------------------------------------------------------------------------
// The vector format
// ------------------------------------------------------------------------------------------

/** The register names a vector uses (all 16-bit). */
export const REG_NAMES = ['ax', 'bx', 'cx', 'dx', 'cs', 'ss', 'ds', 'es', 'sp', 'bp', 'si', 'di', 'ip', 'flags'] as const;
export type RegName = (typeof REG_NAMES)[number];
export type Regs = Record<RegName, number>;

/** One test vector, as stored in the suite files. */
export interface Vector {
  name: string;
  bytes: number[];
  initial: { regs: Regs; ram: [number, number][] };
  final: { regs: Partial<Regs>; ram: [number, number][] };
  exception?: { number: number; flag_address: number };
  hash: string;
}

/** Outcome of one vector. */
export type VectorResult =
  | { status: 'pass'; index: number; name: string; hash: string }
  | { status: 'fail'; index: number; name: string; hash: string; diffs: string[]; unsupported: boolean; bytes: number[] }
  | { status: 'excluded'; index: number; name: string; hash: string; reason: string; ruleId: string };

/** The folder of the 80286 real-mode suite, resolved from the project root (not the cwd). */
export function suiteDir(): string {
  const env = process.env['VIRTLAB_CONFORMANCE_DIR'];
  if (env) return resolve(env);
  return join(projectRoot(), '..', 'shared', 'conformance', '80286-real-mode');
}

/** The project root: the nearest ancestor of this module holding virtlab's package.json. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'virtlab') return dir;
      } catch { /* not ours */ }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('conformance: cannot find the virtlab project root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Suite names (file names without `.json.gz`), in sorted order. */
export function listSuites(dir = suiteDir()): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json.gz')).map((f) => f.slice(0, -'.json.gz'.length)).sort();
}

/** Loads one suite file (`name` like `01`, `F7.6`, `0F01`, with or without `.json.gz`). */
export function loadSuite(name: string, dir = suiteDir()): Vector[] {
  const file = name.endsWith('.json.gz') ? name : `${name}.json.gz`;
  return JSON.parse(gunzipSync(readFileSync(join(dir, file))).toString('utf8')) as Vector[];
}

// ------------------------------------------------------------------------------------------
// Memory with write tracking
// ------------------------------------------------------------------------------------------

const LINE_SHIFT = 8;

/** Physical memory that remembers which 256-byte lines were written (for cleanup and checks). */
class TrackingMemory extends PhysicalMemory {
  readonly dirtyMark: Uint8Array;
  readonly dirty: number[] = [];

  constructor(size: number) {
    super(size);
    this.dirtyMark = new Uint8Array(size >>> LINE_SHIFT);
  }

  private mark(addr: number, len: number): void {
    const a = addr >>> LINE_SHIFT, b = (addr + len - 1) >>> LINE_SHIFT;
    for (let l = a; l <= b; l++) {
      if (l < this.dirtyMark.length && this.dirtyMark[l] === 0) { this.dirtyMark[l] = 1; this.dirty.push(l); }
    }
  }

  override write8(addr: number, v: number): void { this.mark(addr, 1); super.write8(addr, v); }
  override write16(addr: number, v: number): void { this.mark(addr, 2); super.write16(addr, v); }
  override write32(addr: number, v: number): void { this.mark(addr, 4); super.write32(addr, v); }

  /** Marks [addr, addr+len) as possibly written (for writers that bypass write8/16/32). */
  markRange(addr: number, len: number): void { this.mark(addr, len); }

  /** Zeroes every line written since the last call. */
  clean(): void {
    for (const l of this.dirty) {
      this.u8.fill(0, l << LINE_SHIFT, (l + 1) << LINE_SHIFT);
      this.dirtyMark[l] = 0;
    }
    this.dirty.length = 0;
  }
}

// ------------------------------------------------------------------------------------------
// The harness
// ------------------------------------------------------------------------------------------

const SEG_OF: Record<'cs' | 'ss' | 'ds' | 'es', number> = { es: ES, cs: CS, ss: SS, ds: DS };
/** r16 index of each general register (EAX..EDI order: ax cx dx bx sp bp si di). */
const GPR16: Record<'ax' | 'bx' | 'cx' | 'dx' | 'sp' | 'bp' | 'si' | 'di', number> = {
  ax: 0, cx: 2, dx: 4, bx: 6, sp: 8, bp: 10, si: 12, di: 14,
};
const GPR_NAMES = ['ax', 'bx', 'cx', 'dx', 'sp', 'bp', 'si', 'di'] as const;
const FLAG_NAMES: [number, string][] = [
  [0x0001, 'CF'], [0x0004, 'PF'], [0x0010, 'AF'], [0x0040, 'ZF'], [0x0080, 'SF'], [0x0100, 'TF'],
  [0x0200, 'IF'], [0x0400, 'DF'], [0x0800, 'OF'], [0x3000, 'IOPL'], [0x4000, 'NT'], [0x8000, 'b15'],
  [0x0008, 'b3'], [0x0020, 'b5'], [0x0002, 'b1'],
];
/** String instructions (their destination is ES:DI). */
const STRING_OPS = new Set([0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf]);
/** Index of the opcode byte after the prefixes. */
function decodeOpIndex(b: number[]): number {
  let i = 0;
  while (i < b.length && (b[i] === 0x26 || b[i] === 0x2e || b[i] === 0x36 || b[i] === 0x3e || b[i] === 0xf0 || b[i] === 0xf2 || b[i] === 0xf3)) i++;
  return i;
}
/** Exceptions a single vector may raise before the harness calls it a fault loop. */
const MAX_FAULTS = 50;
/** Instructions a single vector may take (REP string forms with CX ≤ 127 that restart per iteration). */
const MAX_STEPS = 1000;

/** Options for a harness run. */
export interface RunOptions {
  /** Ignore the exclusion list (report everything as pass/fail). */
  noExclusions?: boolean;
  /** Compare every flag and register bit (ignore the undefined-flag and register masks). */
  noMasks?: boolean;
}

function hex(v: number, digits: number): string {
  return (v >>> 0).toString(16).toUpperCase().padStart(digits, '0');
}

/** Names the flags set in `bits`. */
export function flagNames(bits: number): string {
  const out: string[] = [];
  for (const [m, n] of FLAG_NAMES) if ((bits & m) !== 0) out.push(n);
  return out.join(' ') || '-';
}

/**
 * Runs vectors on one reused CPU. Create one per process (it holds 16 MiB of RAM).
 */
export class Harness {
  readonly mem: TrackingMemory;
  readonly io: PortBus;
  readonly cpu: Cpu;
  /** Addresses written directly (initial RAM), cleared after each vector. */
  private readonly seeded: number[] = [];
  /**
   * HLT (F4) is not implemented yet: the harness put a stand-in in the dispatch table, because
   * `run(1)` continues after a fault into the handler's HLT and must stop there.
   */
  readonly hltStandIn: boolean;
  /** Exceptions raised during the current vector. */
  private faults = 0;

  /** `jit`: run with the block compiler on, compiling every block at once (threshold 1); else interpret only. */
  constructor(opts: { jit?: boolean } = {}) {
    this.mem = new TrackingMemory(16 << 20);
    // Unclaimed ports read as all-ones (0xFF / 0xFFFF), as the suite's IN expects.
    this.io = new PortBus();
    this.cpu = new Cpu(this.mem, this.io, unitCostTable(), {
      itlb: new Tlb({ sets: 16, ways: 4 }),
      dtlb: new Tlb({ sets: 16, ways: 4 }),
    });
    // A fault loop (every instruction faulting, so none retires) would keep run(1) busy
    // forever: stop the machine after too many exceptions within one vector.
    const raise = Cpu.prototype.raise;
    const cpu = this.cpu;
    cpu.raise = (vector: number, code?: number): never => {
      if (++this.faults > MAX_FAULTS) cpu.stopReason = { kind: 'shutdown', detail: `harness: more than ${MAX_FAULTS} exceptions (fault loop), last vector ${vector}` };
      return raise.call(cpu, vector, code);
    };
    // Explicit either way (the CPU's default may change): the interpreter alone, or the
    // JIT compiling every block at once.
    cpu.jitEnabled = opts.jit === true;
    if (opts.jit) cpu.jit!.threshold = 1;
    this.hltStandIn = !isDefined(0xf4);
    if (this.hltStandIn) {
      const hlt = (cpu: Cpu): void => cpu.halt();
      HANDLERS[0xf4] = hlt;
      HANDLERS[0x2f4] = hlt;
    }
  }

  /** Runs one vector of suite `suite`; never throws for CPU misbehaviour (reports it). */
  run(suite: string, v: Vector, index: number, opts: RunOptions = {}): VectorResult {
    const rules = rulesFor(suite, v);
    if (opts.noMasks) { rules.flagsMask = 0; rules.pushedFlagsMask = 0; rules.regMask = {}; }
    if (!opts.noExclusions && rules.exclude) {
      return { status: 'excluded', index, name: v.name, hash: v.hash, reason: rules.exclude.reason, ruleId: rules.exclude.id };
    }
    if (this.hltStandIn && suite === 'F4') {
      return { status: 'fail', index, name: v.name, hash: v.hash, diffs: ['unsupported: HLT (F4) not implemented (the harness uses a stand-in for the HLT after each vector)'], unsupported: true, bytes: v.bytes };
    }
    let diffs: string[];
    try {
      diffs = this.execute(v, rules);
    } catch (e) {
      diffs = [`harness/CPU threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`];
    } finally {
      this.cleanup();
    }
    return diffs.length === 0
      ? { status: 'pass', index, name: v.name, hash: v.hash }
      : { status: 'fail', index, name: v.name, hash: v.hash, diffs, unsupported: diffs[0]!.startsWith('unsupported:'), bytes: v.bytes };
  }

  /**
   * Safety net for RAM written behind the tracking's back: counts (and zeroes) nonzero bytes
   * in the real-mode address range, which must be all zero between vectors.
   */
  leakCheck(): number {
    const w = this.mem.i32;
    let n = 0;
    for (let i = 0; i < (0x110000 >> 2); i++) {
      if (w[i] !== 0) { n++; w[i] = 0; }
    }
    return n;
  }

  private cleanup(): void {
    const u8 = this.mem.u8;
    for (const a of this.seeded) u8[a] = 0;
    this.seeded.length = 0;
    this.mem.clean();
  }

  private setup(v: Vector): void {
    const cpu = this.cpu;
    this.faults = 0;
    cpu.resetRealMode();
    cpu.idtrBase = 0;
    cpu.idtrLimit = 0x3ff;
    cpu.halted = false;
    cpu.stopReason = null;
    cpu.intrShadow = false;
    cpu.attention = 0;
    cpu.setIntrLine(false);
    const r = v.initial.regs;
    for (const n of GPR_NAMES) cpu.r16[GPR16[n]] = r[n];
    for (const s of ['es', 'cs', 'ss', 'ds'] as const) {
      // Real-mode caches: base = selector × 16, limit 0xFFFF, read/write (CS too, as after reset).
      cpu.setSegmentCache(SEG_OF[s], r[s], r[s] << 4, 0xffff, 0x93);
      cpu.loadRealSegment(SEG_OF[s], r[s]);
    }
    cpu.setSegmentCache(FS, 0, 0, 0xffff, 0x93);
    cpu.setSegmentCache(GS, 0, 0, 0xffff, 0x93);
    cpu.eip = r.ip;
    // IOPL and NT cannot be set in 286 real mode; bit 1 always reads 1.
    cpu.flags = (r.flags & 0x0fff) | 2;
    const u8 = this.mem.u8;
    for (const [a, b] of v.initial.ram) { u8[a] = b; this.seeded.push(a); }
  }

  /** Executes the vector; returns the differences from its expectation (empty: pass). */
  private execute(v: Vector, rules: VectorRules): string[] {
    this.setup(v);
    const cpu = this.cpu;
    const diffs: string[] = [];
    let steps = 0;
    let finalIp = -1;
    for (;;) {
      if (steps > 0) {
        if (cpu.halted) { finalIp = cpu.eip & 0xffff; break; }
        // The HLT that follows the instruction (or is planted at a jump/exception target).
        if (cpu.mem.read8((cpu.segBase[CS]! + (cpu.eip & 0xffff)) >>> 0) === 0xf4) { finalIp = (cpu.eip + 1) & 0xffff; break; }
      }
      if (steps >= MAX_STEPS) { diffs.push(`did not reach the HLT within ${MAX_STEPS} instructions`); return diffs; }
      // The JIT only enters where the fetch window already maps EIP (it never refills it):
      // map it, so that compiled code, not the interpreter, runs the instruction.
      if (cpu.jit !== null) {
        const c = cpu as unknown as { refillFetch?: () => void };
        if (typeof c.refillFetch === 'function') c.refillFetch();
      }
      cpu.run(1);
      steps++;
      const stop = cpu.stopReason as Cpu['stopReason'];
      if (stop !== null) {
        if (stop.kind === 'unsupported') {
          diffs.push(`unsupported: ${stop.detail} (at ${hex(stop.address, 6)}: ${stop.bytes.slice(0, 6).map((b) => hex(b, 2)).join(' ')})`);
        } else {
          diffs.push(`machine stopped: ${stop.kind}: ${'detail' in stop ? stop.detail : ''}`);
        }
        return diffs;
      }
    }
    // String fast paths may copy/fill RAM directly (mem.u8), which the write tracking does
    // not see: treat the whole ES segment of a string instruction as possibly written.
    if (STRING_OPS.has(v.bytes[decodeOpIndex(v.bytes)]!)) this.mem.markRange(cpu.segSel[ES]! << 4, 0x10000);
    const init = v.initial.regs, fin = v.final.regs;
    // ---- registers ----
    for (const n of GPR_NAMES) {
      const want = (fin[n] ?? init[n]) & 0xffff;
      const mask = rules.regMask[n] ?? 0xffff;
      const got = cpu.r16[GPR16[n]]!;
      if ((got & mask) !== (want & mask)) diffs.push(`${n}: expected ${hex(want, 4)} got ${hex(got, 4)}${mask !== 0xffff ? ` (compared bits ${hex(mask, 4)})` : ''}`);
    }
    for (let i = 0; i < 8; i++) {
      const hi = cpu.r32[i]! >>> 16;
      if (hi !== 0) diffs.push(`${['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'][i]}[31:16]: expected 0000 got ${hex(hi, 4)}`);
    }
    for (const s of ['cs', 'ss', 'ds', 'es'] as const) {
      const want = (fin[s] ?? init[s]) & 0xffff;
      const got = cpu.segSel[SEG_OF[s]]!;
      if (got !== want) diffs.push(`${s}: expected ${hex(want, 4)} got ${hex(got, 4)}`);
      else if (cpu.segBase[SEG_OF[s]] !== want << 4) diffs.push(`${s}.base: expected ${hex(want << 4, 6)} got ${hex(cpu.segBase[SEG_OF[s]]!, 6)}`);
    }
    const wantIp = (fin.ip ?? init.ip) & 0xffff;
    if (finalIp !== wantIp) diffs.push(`ip: expected ${hex(wantIp, 4)} got ${hex(finalIp, 4)}`);
    // ---- flags ----
    const wantFlags = (fin.flags ?? ((init.flags & 0x0fff) | 2)) & 0xffff;
    const gotFlags = cpu.flags & 0xffff;
    const fmask = 0xffff & ~rules.flagsMask;
    if ((gotFlags & fmask) !== (wantFlags & fmask)) {
      const d = (gotFlags ^ wantFlags) & fmask;
      diffs.push(`flags: expected ${hex(wantFlags, 4)} got ${hex(gotFlags, 4)} (differ: ${flagNames(d)}${rules.flagsMask ? `; ignored: ${flagNames(rules.flagsMask)}` : ''})`);
    }
    if ((cpu.flags & ~0xffff) !== 0) diffs.push(`eflags[31:16]: expected 0000 got ${hex(cpu.flags >>> 16, 4)}`);
    // ---- RAM ----
    const expected = new Map<number, number>();
    for (const [a, b] of v.initial.ram) expected.set(a, b);
    for (const [a, b] of v.final.ram) expected.set(a, b);
    // Bytes whose comparison is masked: the pushed FLAGS image of an exception, PUSHF images.
    const ramMask = new Map<number, number>();
    const flagImageMask = rules.flagsMask | rules.pushedFlagsMask;
    if (v.exception && flagImageMask) {
      // The image lies at SS:(SP-2) of the initial SS:SP. The suite's flag_address is that
      // address rounded down to even (the word's bus address): one byte low for an odd SP.
      const ssBase = init.ss << 4;
      ramMask.set(ssBase + ((init.sp - 2) & 0xffff), ~flagImageMask & 0xff);
      ramMask.set(ssBase + ((init.sp - 1) & 0xffff), ~(flagImageMask >> 8) & 0xff);
    }
    for (const [a, m] of rules.ramMask(v)) ramMask.set(a, (ramMask.get(a) ?? 0xff) & m);
    const u8 = this.mem.u8;
    const checked = new Set<number>();
    for (const [a, b] of v.final.ram) {
      checked.add(a);
      const m = ramMask.get(a) ?? 0xff;
      if ((u8[a]! & m) !== (b & m)) diffs.push(`ram[${hex(a, 6)}]: expected ${hex(b, 2)} got ${hex(u8[a]!, 2)}${m !== 0xff ? ` (compared bits ${hex(m, 2)})` : ''}`);
    }
    // Writes to bytes the vector does not expect to change.
    const stray: string[] = [];
    for (const l of this.mem.dirty) {
      const base = l << LINE_SHIFT;
      for (let a = base; a < base + (1 << LINE_SHIFT); a++) {
        if (checked.has(a)) continue;
        const want = expected.get(a) ?? 0;
        const m = ramMask.get(a) ?? 0xff;
        if ((u8[a]! & m) !== (want & m)) stray.push(`ram[${hex(a, 6)}]: expected ${hex(want, 2)} (unchanged) got ${hex(u8[a]!, 2)}`);
      }
    }
    stray.sort();
    diffs.push(...stray.slice(0, 8));
    if (stray.length > 8) diffs.push(`... ${stray.length - 8} more unexpected RAM writes`);
    if (v.exception && !diffs.some((d) => d.startsWith('unsupported'))) {
      if (diffs.length > 0) diffs.push(`(the 286 raised exception ${v.exception.number})`);
    }
    return diffs;
  }
}

/** Per-suite totals. */
export interface SuiteSummary {
  suite: string;
  total: number;
  pass: number;
  fail: number;
  /** Failures that stopped the machine as unsupported (instruction not implemented). */
  unsupported: number;
  excluded: number;
  failures: Extract<VectorResult, { status: 'fail' }>[];
  /** Exclusion rule id → count. */
  excludedBy: Map<string, number>;
}

/** Runs (a prefix of) one suite. */
export function runSuite(h: Harness, suite: string, opts: RunOptions & { limit?: number } = {}): SuiteSummary {
  const vectors = loadSuite(suite);
  const n = opts.limit !== undefined ? Math.min(opts.limit, vectors.length) : vectors.length;
  const s: SuiteSummary = { suite, total: n, pass: 0, fail: 0, unsupported: 0, excluded: 0, failures: [], excludedBy: new Map() };
  for (let i = 0; i < n; i++) {
    const r = h.run(suite, vectors[i]!, i, opts);
    if (r.status === 'pass') s.pass++;
    else if (r.status === 'fail') { s.fail++; if (r.unsupported) s.unsupported++; s.failures.push(r); }
    else { s.excluded++; s.excludedBy.set(r.ruleId, (s.excludedBy.get(r.ruleId) ?? 0) + 1); }
  }
  const leaked = h.leakCheck();
  if (leaked > 0) {
    // The harness failed to clean up: results of this file after the leak are not reliable.
    s.fail++;
    s.failures.push({ status: 'fail', index: -1, name: '(harness)', hash: '-', bytes: [], unsupported: false,
      diffs: [`harness: ${leaked} words of RAM were left nonzero after the file (written without tracking)`] });
  }
  return s;
}

/** A readable report of one failing vector. */
export function formatFailure(suite: string, r: Extract<VectorResult, { status: 'fail' }>): string {
  const lines = [`  ${suite} #${r.index} ${r.name}  [${r.hash}]  bytes ${r.bytes.map((b) => hex(b, 2)).join(' ')}`];
  for (const d of r.diffs) lines.push(`      ${d}`);
  return lines.join('\n');
}
