/**
 * The control-flow log in the style of Intel Processor Trace (docs/trace-format.md): a TNT
 * bit (taken / not taken) for every conditional branch (Jcc, LOOP/LOOPE/LOOPNE, JCXZ) and a
 * TIP (the target) for every near indirect branch (JMP/CALL r/m, RET). It is taken by
 * wrapping those handlers in the CPU's dispatch table — the mode's own table, so a monitor's
 * overlay keeps working. The JIT still compiles such a machine's blocks but calls the wrapped
 * branch handlers instead of inlining them, so only a machine that records or checks the log
 * pays for it.
 */
import type { Cpu } from '../machine/cpu/cpu.js';
import type { Handler } from '../machine/cpu/op-table.js';

/** What the wrapped handlers report to. */
export interface BranchSink {
  /** A conditional branch retired; `taken`: EIP is not the next instruction. */
  tnt(cpu: Cpu, taken: boolean): void;
  /** A near indirect branch retired, to `target` (the new EIP). */
  tip(cpu: Cpu, target: number): void;
}

/**
 * Installs `sink` on the CPU's current dispatch table (call after the monitor attached).
 * Only instructions that retire report: a fault throws out of the handler first.
 */
export function installBranchLog(cpu: Cpu, sink: BranchSink): void {
  const t = cpu.table.slice();
  const wrapCond = (idx: number, immBytes: (cpu: Cpu) => number): void => {
    const orig = t[idx]!;
    t[idx] = (c: Cpu): void => {
      const fall = c.eip + immBytes(c);
      orig(c);
      sink.tnt(c, c.eip !== fall);
    };
  };
  const one = (): number => 1;
  const rel = (c: Cpu): number => (c.opsize32 ? 4 : 2);
  for (const size of [0, 0x200]) {
    for (let cc = 0; cc < 16; cc++) {
      wrapCond(size | (0x70 + cc), one);
      wrapCond(size | (0x180 + cc), rel);
    }
    for (const op of [0xe0, 0xe1, 0xe2, 0xe3]) wrapCond(size | op, one);
    for (const op of [0xc2, 0xc3]) {
      const orig = t[size | op]!;
      t[size | op] = (c: Cpu): void => { orig(c); sink.tip(c, c.eip >>> 0); };
    }
    const grp5: Handler = t[size | 0xff]!;
    t[size | 0xff] = (c: Cpu): void => {
      grp5(c);
      // FF /2 CALL r/m and FF /4 JMP r/m; the far forms (/3, /5) are not logged.
      const r = c.modrmReg;
      if (r === 2 || r === 4) sink.tip(c, c.eip >>> 0);
    };
  }
  cpu.setTable(t);
}

/** Packs TNT bits, least significant bit first. */
export class BitWriter {
  private bytes = new Uint8Array(1024);
  bits = 0;

  push(bit: boolean): void {
    const i = this.bits >>> 3;
    if (i >= this.bytes.length) { const b = new Uint8Array(this.bytes.length * 2); b.set(this.bytes); this.bytes = b; }
    if (bit) this.bytes[i]! |= 1 << (this.bits & 7);
    this.bits++;
  }

  /** The packed bits so far, and a fresh start. */
  take(): { bytes: Uint8Array; bits: number } {
    const out = { bytes: this.bytes.slice(0, (this.bits + 7) >>> 3), bits: this.bits };
    this.bytes = new Uint8Array(1024);
    this.bits = 0;
    return out;
  }
}
