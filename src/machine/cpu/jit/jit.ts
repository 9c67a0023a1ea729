/**
 * The block cache and entry logic of the JIT (see `compiler.ts` for the code generation).
 *
 * Blocks are keyed by the physical address of their first byte, the EIP there, and CS.D /
 * SS.B (what the generated code bakes in). Entry requires the CPU's fetch window to map the
 * current EIP (so the interpreter would not refill it, i.e. make no ITLB lookup, for any
 * byte of the block) and the block to end within the CS limit. Self-modifying code is
 * caught without write tracking: a block compares its source bytes with guest memory on
 * entry (and is recompiled on a mismatch), and leaves after any write of its own that may
 * have hit its bytes.
 *
 * Handler tables: blocks are compiled for the CPU's table (`cpu.table`). With an overlay
 * (a monitor's or the branch log's wrappers) the compiler learns, once per table, which
 * entries differ from the native `HANDLERS` and calls those through the table, ending the
 * block after them; the cache holds blocks of one table only and is flushed when another
 * is installed (checked once per block entry, never per instruction).
 */
import type { Cpu } from '../cpu.js';
import { HANDLERS, type Handler } from '../op-table.js';
import { compileBlock, wrappedIndices, type BlockFn } from './compiler.js';

/** `wrappedIndices` per table ever installed (tables are long-lived: one per monitor). */
const WRAPPED = new WeakMap<readonly Handler[], Uint8Array>();

/** Counters of what the JIT did; all monotonic. */
export interface JitStats {
  /** Blocks compiled (including recompilations). */
  compiled: number;
  /** Entries into compiled code. */
  entries: number;
  /** Guest instructions retired by compiled code (not counting blocks left by a fault). */
  instructions: number;
  /** Blocks found stale (guest memory changed under them) and recompiled. */
  invalidations: number;
  /**
   * Block starts left to the interpreter: the first instruction does not fit in the page or
   * has too many prefixes, or the block would be a single handler call ending it.
   */
  rejected: number;
}

/**
 * Handler-table indices after which the interpreter should look for a block again: control
 * transfers (a block starts at their targets and after them). Elsewhere the interpreter
 * does not look, so straight-line cold code pays nothing for the JIT.
 */
export const LOOK_AFTER: Uint8Array = (() => {
  const t = new Uint8Array(1024);
  const ops = [0x9a, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xe0, 0xe1, 0xe2, 0xe3, 0xe8, 0xe9, 0xea, 0xeb, 0xff,
    0x134, 0x135];
  for (let i = 0; i < 16; i++) ops.push(0x70 + i, 0x180 + i);
  for (const op of ops) { t[op] = 1; t[op | 0x200] = 1; }
  return t;
})();

/** `Jit.run` results. */
export const JitRun = {
  /** Compiled code ran at least one instruction. */
  Ran: 1,
  /** Nothing ran; no need to look again before the next control transfer. */
  Cold: 0,
  /**
   * Nothing ran (the fetch window does not map EIP, or the block there is a single
   * instruction better interpreted); look again after one instruction.
   */
  Again: -1,
} as const;

const SLOTS = 1 << 14;
const MASK = SLOTS - 1;

/** One cache slot's content: a block start and its code (once compiled). */
class Entry {
  fn: BlockFn | null = null;
  /** EIP just past the block (entry needs it within the CS limit). */
  end = 0;
  /** With no `fn`: the first bytes when compiling failed (a retry waits for them to change). */
  firstWord = 0;
  /** With no `fn`: the interpreter runs this instruction and the JIT looks again after it. */
  again = false;
  constructor(readonly phys: number, readonly eip: number, readonly mode: number) {}
}

/** The JIT of one CPU. */
export class Jit {
  /**
   * Instructions the interpreter must have run from a block start (up to the next control
   * transfer, summed over visits) before the block is compiled (0: at once). Compiling
   * costs V8 tens of milliseconds of optimization per block, and a new block runs in V8's
   * bytecode interpreter until then, so it pays only for code that stays hot.
   */
  threshold = 100_000;
  /** Most instructions in one block. */
  maxInstructions = 64;
  readonly stats: JitStats = { compiled: 0, entries: 0, instructions: 0, invalidations: 0, rejected: 0 };
  private table: (Entry | undefined)[] = new Array<Entry | undefined>(SLOTS);
  /** Times each slot's address was reached without a block (saturating at `threshold`). */
  private heat = new Float64Array(SLOTS);
  /** The slot whose code the interpreter is running (-1: none), and the count then. */
  private lastSlot = -1;
  private lastCount = 0;
  /** The last block ran off its end: what follows is hot too. */
  private chained = false;
  /** The handler table the cached blocks were compiled for. */
  private forTable: readonly Handler[] = HANDLERS;
  /** Its entries that differ from `HANDLERS` (null: the native table itself). */
  private wrapped: Uint8Array | null = null;

  /** Drops every compiled block (e.g. after changing the cost table's contents). */
  flush(): void {
    this.table = new Array<Entry | undefined>(SLOTS);
    this.heat.fill(0);
    this.lastSlot = -1;
    this.chained = false;
  }

  /**
   * Runs compiled code at the CPU's EIP if there is (or now can be) a block for it
   * (`JitRun.Ran`: at least one instruction retired); otherwise the interpreter must run the
   * next instruction. Faults propagate (FAULT) exactly as from the interpreter.
   */
  run(cpu: Cpu, target: number): number {
    if (cpu.table !== this.forTable) this.useTable(cpu.table);
    const phys = cpu.fetchPhys();
    if (phys < 0) return JitRun.Again;
    const slot = (phys ^ (phys >>> 13)) & MASK;
    let e = this.table[slot];
    const eip = cpu.eip;
    const mode = (cpu.cs32 ? 1 : 0) | (cpu.ss32 ? 2 : 0);
    // The instructions interpreted since the last look were run from the block start seen
    // then: they make it hotter.
    const now = cpu.instructions;
    if (this.lastSlot >= 0) { this.heat[this.lastSlot] += now - this.lastCount; this.lastSlot = -1; }
    if (e === undefined || e.phys !== phys || e.eip !== eip || e.mode !== mode) {
      // Cold path: only a counter per slot until code from there has run `threshold`
      // instructions. A block that a hot block ran into (its fall-through end) is compiled
      // at once.
      const chained = this.chained;
      this.chained = false;
      if (!chained && this.heat[slot]! < this.threshold) {
        this.lastSlot = slot;
        this.lastCount = now;
        return JitRun.Cold;
      }
      this.heat[slot] = 0;
      e = new Entry(phys, eip, mode);
      this.table[slot] = e;
      if (this.compile(cpu, e) === null) return e.again ? JitRun.Again : JitRun.Cold;
    }
    let fn = e.fn;
    if (fn === null) {
      // Rejected: look again only when the bytes there have changed.
      if (this.word(cpu, phys) === e.firstWord) return e.again ? JitRun.Again : JitRun.Cold;
      fn = this.compile(cpu, e);
      if (fn === null) return e.again ? JitRun.Again : JitRun.Cold;
    }
    if (e.end - 1 > cpu.segHi[1]!) return JitRun.Cold;
    const before = cpu.instructions;
    this.stats.entries++;
    if (!fn(cpu, target)) {
      // Guest memory no longer holds the bytes the block was made from.
      this.stats.invalidations++;
      fn = this.compile(cpu, e);
      if (fn === null || e.end - 1 > cpu.segHi[1]!) return JitRun.Cold;
      fn(cpu, target);
    }
    this.stats.instructions += cpu.instructions - before;
    this.chained = cpu.eip === e.end;
    return JitRun.Ran;
  }

  /** Compiles for `table` from now on: blocks made for another table are dropped. */
  private useTable(table: readonly Handler[]): void {
    this.flush();
    this.forTable = table;
    if (table === HANDLERS) { this.wrapped = null; return; }
    let w = WRAPPED.get(table);
    if (w === undefined) { w = wrappedIndices(table); WRAPPED.set(table, w); }
    this.wrapped = w;
  }

  private word(cpu: Cpu, phys: number): number {
    const m = cpu.mem.u8;
    return m[phys]! | (m[phys + 1]! << 8) | (m[phys + 2]! << 16) | (m[phys + 3]! << 24);
  }

  private compile(cpu: Cpu, e: Entry): BlockFn | null {
    const b = compileBlock(cpu, e.phys, e.eip, { maxInstructions: this.maxInstructions, wrapped: this.wrapped });
    if (b === null || b.trivial) {
      e.fn = null;
      e.again = b !== null;
      e.firstWord = this.word(cpu, e.phys);
      this.stats.rejected++;
      return null;
    }
    this.stats.compiled++;
    e.fn = b.fn;
    e.end = e.eip + b.length;
    return b.fn;
  }
}
