/**
 * What a trace holds (docs/trace-format.md): the header, the positioned events, the port-read
 * and RDTSC streams and the checkpoints of each chunk, and the trailer; their encoding into
 * section payloads and back; and the guest-visible architectural state a checkpoint records.
 */
import { createHash } from 'node:crypto';
import type { Cpu } from '../machine/cpu/cpu.js';
import { CS, DS, EAX, EBP, EBX, ECX, EDI, EDX, ES, ESI, ESP, FS, GS, SS } from '../machine/cpu/constants.js';
import type { Monitor } from '../vmm/monitor.js';
import { ByteReader, ByteWriter } from './format.js';

/** The trace header (section 1), JSON with this key order. */
export interface TraceHeader {
  readonly schema: 'virtlab.trace/1';
  readonly recorder: { readonly name: 'virtlab'; readonly version: string };
  readonly image: {
    readonly path: string;
    readonly sha256: string;
    readonly bytes: number;
    readonly format: 'multiboot' | 'flat';
    readonly flat: { readonly loadAddress: number; readonly entry?: number; readonly mode?: 'protected32' | 'real' } | null;
    readonly cmdline: string;
  };
  /** The workload and its parameters when the image is `workload:NAME`, else null. */
  readonly workload: { readonly name: string; readonly params: Readonly<Record<string, string | number>> } | null;
  /** The seed of the device models' timing and traffic generators (null: the workload's own). */
  readonly seed: number | null;
  readonly machine: {
    readonly memoryMiB: number;
    readonly disk: { readonly name: string; readonly sectors: number; readonly seed: number | string; readonly bmBase: number | null; readonly imageSha256: string } | null;
    readonly nic: { readonly name: string; readonly seed: number | string; readonly ioBase: number | null; readonly guestMac: number[] | null; readonly peerMac: number[] | null } | null;
  };
  /** The profile of the (native) recording run: it decides the timing of the inputs. */
  readonly profile: { readonly name: string; readonly sha256: string };
  readonly maxInstructions: number;
  /** Logical instructions between checkpoints; a guest-RAM digest every `ramDigestEvery` of them. */
  readonly checkpointInterval: number;
  readonly ramDigestEvery: number;
  /**
   * `pv`: the guest was recorded under the pv hypervisor (a paravirtualized guest, its own
   * instruction stream), and replays under pv only. Absent for a native recording.
   */
  readonly mode?: 'pv';
}

/** How the recording ended (section 5, JSON). */
export interface TraceTrailer {
  readonly instructions: number;
  readonly exit: Readonly<Record<string, string | number>>;
  readonly exitStatus: number;
  /** Idle cycles after the last event (a guest that ended halted). */
  readonly finalIdle: number;
  readonly consoleBytes: number;
  readonly consoleSha256: string;
  readonly counts: Readonly<Record<string, number>>;
}

/** Event kinds as stored. */
export const Ev = { Interrupt: 1, BlockComplete: 2, NetRx: 3, Checkpoint: 4, Virq: 5 } as const;
export const EVENT_NAMES: Readonly<Record<number, string>> = { 1: 'interrupt', 2: 'block-complete', 3: 'net-rx', 4: 'checkpoint', 5: 'virq' };

/** A positioned event. `pos`: logical instructions retired before it; `eip`: where the guest was. */
export type TraceEvent =
  | { readonly kind: 1; readonly pos: number; readonly eip: number; readonly idle: number; readonly vector: number }
  | { readonly kind: 2; readonly pos: number; readonly eip: number; readonly idle: number; readonly device: string; readonly seq: number }
  | { readonly kind: 3; readonly pos: number; readonly eip: number; readonly idle: number; readonly device: string; readonly seq: number; readonly data: Uint8Array }
  | { readonly kind: 4; readonly pos: number; readonly state: Uint32Array; readonly ram: Uint8Array | null }
  /** pv traces only: the hypervisor sent virtual IRQ `virq` (the timer's VIRQ_TIMER) to the guest. */
  | { readonly kind: 5; readonly pos: number; readonly eip: number; readonly idle: number; readonly virq: number };

/** One chunk: the events of logical span [start, end] and the reads made in it. */
export interface Chunk {
  readonly start: number;
  readonly end: number;
  readonly events: TraceEvent[];
  /** Port reads in order: port, width in bytes, value. */
  readonly ports: number[];
  readonly tsc: bigint[];
  /** Control flow: TNT bits (packed, LSB first) and TIP targets, in order. */
  readonly tnt: Uint8Array;
  readonly tntBits: number;
  readonly tips: number[];
  /** The guest's console output produced in the chunk (an output, kept to check the replay's). */
  readonly console: Uint8Array;
}

export function encodeChunk(c: Chunk): Uint8Array {
  const w = new ByteWriter();
  w.varint(c.start);
  w.varint(c.end - c.start);
  w.varint(c.events.length);
  let pos = c.start;
  for (const e of c.events) {
    w.u8(e.kind);
    w.varint(e.pos - pos);
    pos = e.pos;
    switch (e.kind) {
      case Ev.Interrupt: w.u32(e.eip); w.varint(e.idle); w.u8(e.vector); break;
      case Ev.Virq: w.u32(e.eip); w.varint(e.idle); w.u8(e.virq); break;
      case Ev.BlockComplete: w.u32(e.eip); w.varint(e.idle); name(w, e.device); w.varint(e.seq); break;
      case Ev.NetRx: w.u32(e.eip); w.varint(e.idle); name(w, e.device); w.varint(e.seq); w.varint(e.data.length); w.bytes(e.data); break;
      case Ev.Checkpoint:
        w.u8(e.state.length);
        for (const v of e.state) w.u32(v);
        w.u8(e.ram === null ? 0 : e.ram.length);
        if (e.ram !== null) w.bytes(e.ram);
        break;
    }
  }
  w.varint(c.ports.length / 3);
  for (let i = 0; i < c.ports.length; i += 3) { w.varint(c.ports[i]!); w.u8(c.ports[i + 1]!); w.varint(c.ports[i + 2]! >>> 0); }
  w.varint(c.tsc.length);
  for (const t of c.tsc) w.u64(t);
  w.varint(c.tntBits);
  w.bytes(c.tnt.subarray(0, (c.tntBits + 7) >>> 3));
  w.varint(c.tips.length);
  for (const t of c.tips) w.u32(t);
  w.varint(c.console.length);
  w.bytes(c.console);
  return w.finish();
}

/** `pv`: the chunk is from a pv trace (virq events allowed). */
export function decodeChunk(payload: Uint8Array, file: string, offset: number, pv = false): Chunk {
  const r = new ByteReader(payload, file, offset, 'chunk');
  const start = r.varint();
  const end = start + r.varint();
  const n = r.varint();
  const events: TraceEvent[] = [];
  let pos = start;
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    pos += r.varint();
    if (pos > end) r.fail(`event ${i} at position ${pos} is past the chunk's end ${end}`);
    switch (kind) {
      case Ev.Interrupt: { const eip = r.u32(), idle = r.varint(), vector = r.u8(); events.push({ kind, pos, eip, idle, vector }); break; }
      case Ev.Virq: {
        if (!pv) r.fail(`event ${i}: a virq event (kind 5) in a native trace (only pv recordings have them)`);
        const eip = r.u32(), idle = r.varint(), virq = r.u8();
        if (virq >= 24) r.fail(`event ${i}: virq ${virq} (Xen has 24, 0-23)`);
        events.push({ kind, pos, eip, idle, virq });
        break;
      }
      case Ev.BlockComplete: { const eip = r.u32(), idle = r.varint(), device = readName(r), seq = r.varint(); events.push({ kind, pos, eip, idle, device, seq }); break; }
      case Ev.NetRx: {
        const eip = r.u32(), idle = r.varint(), device = readName(r), seq = r.varint(), len = r.varint();
        if (len > 65536) r.fail(`frame of ${len} bytes (at most 65536)`);
        events.push({ kind, pos, eip, idle, device, seq, data: r.bytes(len).slice() });
        break;
      }
      case Ev.Checkpoint: {
        const k = r.u8();
        if (k !== STATE_WORDS) r.fail(`checkpoint with ${k} state words (expected ${STATE_WORDS})`);
        const state = new Uint32Array(k);
        for (let j = 0; j < k; j++) state[j] = r.u32();
        const rl = r.u8();
        if (rl !== 0 && rl !== 16) r.fail(`RAM digest of ${rl} bytes (expected 0 or 16)`);
        events.push({ kind, pos, state, ram: rl === 0 ? null : r.bytes(rl).slice() });
        break;
      }
      default: r.fail(`unknown event kind ${kind} (expected ${pv ? '1-5' : '1-4'})`);
    }
  }
  const np = r.varint();
  if (np > payload.length) r.fail(`${np} port reads cannot fit in the payload`);
  const ports: number[] = [];
  for (let i = 0; i < np; i++) {
    const port = r.varint(), width = r.u8(), value = r.varint();
    if (port > 0xffff || (width !== 1 && width !== 2 && width !== 4) || value > 0xffffffff) r.fail(`bad port read #${i}: port ${port}, width ${width}, value ${value}`);
    ports.push(port, width, value);
  }
  const nt = r.varint();
  if (nt * 8 > payload.length) r.fail(`${nt} RDTSC values cannot fit in the payload`);
  const tsc: bigint[] = [];
  for (let i = 0; i < nt; i++) tsc.push(r.u64());
  const tntBits = r.varint();
  if (tntBits > payload.length * 8) r.fail(`${tntBits} TNT bits cannot fit in the payload`);
  const tnt = r.bytes((tntBits + 7) >>> 3).slice();
  const ntip = r.varint();
  if (ntip * 4 > payload.length) r.fail(`${ntip} TIP targets cannot fit in the payload`);
  const tips: number[] = [];
  for (let i = 0; i < ntip; i++) tips.push(r.u32());
  const nc = r.varint();
  if (nc > payload.length) r.fail(`${nc} console bytes cannot fit in the payload`);
  const console = r.bytes(nc).slice();
  if (!r.done) r.fail(`${payload.length - r.offset} unexpected trailing bytes`);
  return { start, end, events, ports, tsc, tnt, tntBits, tips, console };
}

/** One index row per chunk. */
export interface IndexEntry {
  readonly offset: number;
  readonly start: number;
  readonly end: number;
  readonly events: number;
  readonly ports: number;
  readonly tsc: number;
  readonly tntBits: number;
  readonly tips: number;
}

export function encodeIndex(rows: readonly IndexEntry[]): Uint8Array {
  const w = new ByteWriter();
  w.varint(rows.length);
  for (const x of rows) { w.varint(x.offset); w.varint(x.start); w.varint(x.end - x.start); w.varint(x.events); w.varint(x.ports); w.varint(x.tsc); w.varint(x.tntBits); w.varint(x.tips); }
  return w.finish();
}

export function decodeIndex(payload: Uint8Array, file: string, offset: number): IndexEntry[] {
  const r = new ByteReader(payload, file, offset, 'index');
  const n = r.varint();
  if (n > payload.length) r.fail(`${n} entries cannot fit in the payload`);
  const rows: IndexEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = r.varint(), start = r.varint(), end = start + r.varint();
    rows.push({ offset: o, start, end, events: r.varint(), ports: r.varint(), tsc: r.varint(), tntBits: r.varint(), tips: r.varint() });
  }
  if (!r.done) r.fail('unexpected trailing bytes');
  return rows;
}

export function encodeBlob(nameText: string, data: Uint8Array): Uint8Array {
  const w = new ByteWriter();
  name(w, nameText);
  w.bytes(data);
  return w.finish();
}

export function decodeBlob(payload: Uint8Array, file: string, offset: number): { name: string; data: Uint8Array } {
  const r = new ByteReader(payload, file, offset, 'blob');
  const n = readName(r);
  return { name: n, data: payload.subarray(r.offset) };
}

function name(w: ByteWriter, s: string): void {
  const b = new TextEncoder().encode(s);
  w.varint(b.length);
  w.bytes(b);
}

function readName(r: ByteReader): string {
  const n = r.varint();
  if (n > 255) r.fail(`name of ${n} bytes (at most 255)`);
  return new TextDecoder().decode(r.bytes(n));
}

// ---- guest-visible state ----

/** Words of a checkpoint's state (see STATE_FIELDS). */
export const STATE_WORDS = 20;
/** What each state word is, for divergence messages. */
export const STATE_FIELDS = ['eip', 'eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eflags(arith)', 'cs', 'ss', 'ds', 'es', 'fs', 'gs', 'user', 'cr0', 'cr3', 'cr4'] as const;
/** The first word that some modes cannot show as the guest sees it (the control registers). */
export const STATE_CR_FIRST = 17;
/** CF PF AF ZF SF DF OF: the flags no mode virtualizes (IF and IOPL are, by trap and full). */
const ARITH_FLAGS = 0x0cd5;

/** The guest's control registers as it believes them, or null when the mode hides them. */
export function guestControlRegisters(cpu: Cpu, monitor: Monitor | null): [number, number, number] | null {
  // pv: the guest runs on the real CRs (CR3 holds the machine address of its validated page
  // directory, which a PV kernel knows: it is recorded under pv and compared under pv only).
  if (monitor === null || monitor.mode === 'native' || monitor.mode === 'pv') return [cpu.cr0 >>> 0, cpu.cr3 >>> 0, cpu.cr4 >>> 0];
  // trap (and full, built on it) keep a virtual CPU with the guest's view.
  const m = monitor as unknown as { v?: { cr0: number; cr3: number; cr4: number }; trap?: { v?: { cr0: number; cr3: number; cr4: number } } };
  const v = m.v ?? m.trap?.v;
  if (v !== undefined) return [v.cr0 >>> 0, v.cr3 >>> 0, v.cr4 >>> 0];
  return null;
}

/**
 * The guest-visible architectural state: EIP, the general registers, the arithmetic flags,
 * the segment selectors without their RPL (a deprivileged kernel runs with RPL 1), whether
 * the guest is in user mode, and CR0/CR3/CR4 as the guest sees them (0 when the mode hides them).
 */
export function captureState(cpu: Cpu, monitor: Monitor | null, out = new Uint32Array(STATE_WORDS)): Uint32Array {
  out[0] = cpu.eip >>> 0;
  const regs = [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI];
  for (let i = 0; i < 8; i++) out[1 + i] = cpu.r32[regs[i]!]! >>> 0;
  out[9] = (cpu.flags & ARITH_FLAGS) >>> 0;
  const segs = [CS, SS, DS, ES, FS, GS];
  for (let i = 0; i < 6; i++) out[10 + i] = cpu.segSel[segs[i]!]! & 0xfffc;
  out[16] = cpu.cpl === 3 ? 1 : 0;
  const cr = guestControlRegisters(cpu, monitor);
  out[17] = cr?.[0] ?? 0; out[18] = cr?.[1] ?? 0; out[19] = cr?.[2] ?? 0;
  return out;
}

/** The first 16 bytes of the SHA-256 of the guest's RAM (the monitor's memory above it excluded). */
export function ramDigest(cpu: Cpu): Uint8Array {
  const m = cpu.mem;
  return new Uint8Array(createHash('sha256').update(m.u8.subarray(0, m.guestSize)).digest().subarray(0, 16));
}

export const hex32 = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');
export const hexBytes = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
