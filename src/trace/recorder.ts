/**
 * The trace recorder: runs a guest natively and writes every nondeterministic input at its
 * logical position (docs/trace-format.md). Hooks are installed on this one machine only
 * (the CPU's interrupt acknowledge and TSC hook, the port bus's read methods, the devices'
 * input observers), so a plain run pays nothing for tracing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { WorkloadMachine } from '../guest/workloads/index.js';
import type { RunProgress } from '../machine/machine.js';
import { PortBus } from '../machine/port-bus.js';
import type { LoadedProfile } from '../profiles/index.js';
import { BitWriter, installBranchLog } from './branch-log.js';
import { Section, TRACE_VERSION, TRACE_VERSION_PV, TraceWriter } from './format.js';
import { finishGuestRun, prepareGuest, type GuestRun, type GuestRunSpec } from './run-guest.js';
import {
  captureState, encodeBlob, encodeChunk, encodeIndex, Ev, ramDigest,
  type Chunk, type IndexEntry, type TraceEvent, type TraceHeader, type TraceTrailer,
} from './trace-data.js';

/** Default logical instructions between checkpoints (guest-visible registers). */
export const CHECKPOINT_INTERVAL = 1 << 20;
/** Default logical instructions between guest-RAM digests (a multiple of the checkpoint interval). */
export const RAM_DIGEST_EVERY = 1 << 28;
/** A chunk closes at the first checkpoint after this many instructions or this many buffered bytes. */
const CHUNK_INSTRUCTIONS = 1 << 24;
const CHUNK_BYTES = 1 << 20;

/** What to record. */
export interface RecordSpec {
  readonly image: { readonly bytes: Uint8Array; readonly path: string };
  readonly flat?: GuestRunSpec['flat'];
  readonly cmdline?: string;
  readonly memoryMiB?: number;
  /** Devices (fresh objects: the disk is modified by the run). */
  readonly devices?: WorkloadMachine;
  /** The workload the image was built from, for the header. */
  readonly workload?: { readonly name: string; readonly params: Readonly<Record<string, string | number>> } | null;
  /** Seed of the devices' timing and traffic generators; replaces the devices' own seeds. */
  readonly seed?: number | null;
  readonly profile: LoadedProfile;
  readonly maxInstructions: number;
  readonly checkpointInterval?: number;
  readonly ramDigestEvery?: number;
  /**
   * Record the control-flow log (TNT bits and TIP targets; default true). Branch handlers
   * are then called, not inlined, by the JIT: slower than a plain run.
   */
  readonly branches?: boolean;
  readonly onConsole?: (chunk: Uint8Array) => void;
  readonly onProgress?: (p: RunProgress) => void;
  /**
   * What runs the guest while it is recorded (default `native`). `pv`: the pv hypervisor,
   * for a paravirtualized kernel, which is a different guest (its own instruction stream):
   * the trace holds the pv monitor's inputs (virtual IRQs, back-end completions, arrivals,
   * RDTSC, permitted port reads) and replays under `pv` only (docs/trace-format.md).
   */
  readonly mode?: RecordMode;
}

/** The modes a guest can be recorded under. */
export type RecordMode = 'native' | 'pv';
export const RECORD_MODES: readonly RecordMode[] = ['native', 'pv'];

/** A recording: the trace's bytes and the native run that produced them. */
export interface Recording {
  readonly bytes: Uint8Array;
  readonly run: GuestRun;
}

let cachedVersion: string | null = null;
/** virtlab's version (package.json), written in the header as the recorder's. */
export function recorderVersion(): string {
  if (cachedVersion === null) {
    try {
      const url = new URL('../../package.json', import.meta.url);
      let text: string;
      try { text = readFileSync(url, 'utf8'); } catch { text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'); }
      cachedVersion = String((JSON.parse(text) as { version?: string }).version ?? '0.0.0');
    } catch {
      cachedVersion = '0.0.0';
    }
  }
  return cachedVersion;
}

/** Records `spec` natively (or under pv, `spec.mode`); the same spec gives the same bytes. */
export function recordTrace(spec: RecordSpec): Recording {
  const mode = spec.mode ?? 'native';
  if (mode !== 'native' && mode !== 'pv') throw new RangeError(`a guest is recorded natively or under pv (a paravirtualized guest), not under ${String(mode)}: record it natively and replay the trace with that mode`);
  const pv = mode === 'pv';
  const ck = spec.checkpointInterval ?? CHECKPOINT_INTERVAL;
  const ramEvery = spec.ramDigestEvery ?? RAM_DIGEST_EVERY;
  if (!Number.isSafeInteger(ck) || ck < 1) throw new RangeError(`checkpoint interval must be a positive integer, got ${ck}`);
  if (!Number.isSafeInteger(ramEvery) || ramEvery < ck || ramEvery % ck !== 0) throw new RangeError(`RAM digest interval must be a multiple of the checkpoint interval (${ck}), got ${ramEvery}`);
  const seed = spec.seed ?? null;
  const d = spec.devices;
  const devices: WorkloadMachine | undefined = d === undefined ? undefined : {
    ...(d.disk !== undefined ? { disk: { ...d.disk, seed: seed ?? d.disk.seed } } : {}),
    ...(d.nic !== undefined ? { nic: { ...d.nic, seed: seed ?? d.nic.seed } } : {}),
  };
  const runSpec: GuestRunSpec = {
    image: spec.image, flat: spec.flat, cmdline: spec.cmdline, memoryMiB: spec.memoryMiB, devices,
    mode, profile: spec.profile, maxInstructions: spec.maxInstructions, onConsole: spec.onConsole,
  };
  // The console output is kept per chunk (the replay checks its own against it).
  let consoleOut: Uint8Array[] = [];
  const prepared = prepareGuest({ ...runSpec, onConsole: (b) => { consoleOut.push(b.slice()); spec.onConsole?.(b); } });
  const { machine } = prepared;
  const cpu = machine.cpu;
  // Under pv the checkpoints hold the CRs the pv guest runs on; natively the CPU's own.
  const stateMonitor = pv ? prepared.monitor : null;
  const ata = machine.disk, nic = machine.nic;
  const diskImage = ata !== null ? ata.disk.image.slice() : null;

  // ---- the header ----
  const header: TraceHeader = {
    schema: 'virtlab.trace/1',
    recorder: { name: 'virtlab', version: recorderVersion() },
    image: {
      path: spec.image.path,
      sha256: sha256(spec.image.bytes),
      bytes: spec.image.bytes.length,
      format: spec.flat !== undefined ? 'flat' : 'multiboot',
      flat: spec.flat !== undefined ? { ...spec.flat } : null,
      cmdline: spec.cmdline ?? '',
    },
    workload: spec.workload ?? null,
    seed,
    machine: {
      memoryMiB: prepared.memoryMiB,
      disk: ata !== null ? {
        name: ata.disk.name, sectors: ata.disk.sectors, seed: devices!.disk!.seed,
        bmBase: devices!.disk!.bmBase ?? null, imageSha256: sha256(diskImage!),
      } : null,
      nic: nic !== null ? {
        name: nic.link.name, seed: devices!.nic!.seed, ioBase: devices!.nic!.ioBase ?? null,
        guestMac: devices!.nic!.guestMac !== undefined ? [...devices!.nic!.guestMac] : null,
        peerMac: devices!.nic!.peerMac !== undefined ? [...devices!.nic!.peerMac] : null,
      } : null,
    },
    profile: { name: spec.profile.name, sha256: spec.profile.sha256 },
    maxInstructions: spec.maxInstructions,
    checkpointInterval: ck,
    ramDigestEvery: ramEvery,
    // Only a pv recording says so: a native header stays as it was (same bytes, same digests).
    ...(pv ? { mode: 'pv' as const } : {}),
  };
  const w = new TraceWriter(pv ? TRACE_VERSION_PV : TRACE_VERSION);
  w.section(Section.Header, new TextEncoder().encode(JSON.stringify(header)));
  w.section(Section.Blob, encodeBlob('image', spec.image.bytes));
  if (diskImage !== null) w.section(Section.Blob, encodeBlob('disk', diskImage));

  // ---- the hooks ----
  let events: TraceEvent[] = [];
  let ports: number[] = [];
  let tsc: bigint[] = [];
  let buffered = 0;
  let lastIdle = cpu.idleCycles;
  const idle = (): number => { const v = cpu.idleCycles - lastIdle; lastIdle = cpu.idleCycles; return v; };
  const counts: Record<string, number> = { interrupt: 0, 'block-complete': 0, 'net-rx': 0, checkpoint: 0, 'port-read': 0, rdtsc: 0, 'ram-digest': 0, 'tnt-bit': 0, tip: 0 };
  if (pv) {
    // The pv hypervisor's timer reaches the guest as VIRQ_TIMER on an event channel (its only
    // asynchronous input besides the back ends' completions and arrivals, which the disk and
    // link observers below see): record every send at its position. The upcall it may raise
    // follows from the guest's state (mask, pending bits), so it is not an input.
    counts.virq = 0;
    pvTimer(prepared.monitor).virqHook = (virq: number): boolean => {
      events.push({ kind: Ev.Virq, pos: cpu.instructions, eip: cpu.eip >>> 0, idle: idle(), virq });
      counts.virq!++;
      buffered += 8;
      return false; // observed only: the hypervisor sends it
    };
  }
  const ack = cpu.intrAck;
  cpu.intrAck = () => {
    const vector = ack();
    events.push({ kind: Ev.Interrupt, pos: cpu.instructions, eip: cpu.eip >>> 0, idle: idle(), vector });
    counts.interrupt++;
    buffered += 8;
    return vector;
  };
  if (ata !== null) {
    ata.disk.onInput = (input) => {
      events.push({ kind: Ev.BlockComplete, pos: cpu.instructions, eip: cpu.eip >>> 0, idle: idle(), device: input.device, seq: input.seq });
      counts['block-complete']++;
      buffered += 12;
    };
  }
  if (nic !== null) {
    nic.link.onInput = (input) => {
      const data = input.data!.slice();
      events.push({ kind: Ev.NetRx, pos: cpu.instructions, eip: cpu.eip >>> 0, idle: idle(), device: input.device, seq: input.seq, data });
      counts['net-rx']++;
      buffered += 16 + data.length;
    };
  }
  const io = machine.io;
  let depth = 0;
  const proto = PortBus.prototype;
  // A 16/32-bit read split into byte reads is one register read: only the outermost is logged.
  io.in8 = (port: number): number => {
    const v = proto.in8.call(io, port);
    if (depth === 0) { ports.push(port & 0xffff, 1, v); counts['port-read']++; buffered += 3; }
    return v;
  };
  io.in16 = (port: number): number => {
    depth++;
    let v: number;
    try { v = proto.in16.call(io, port); } finally { depth--; }
    if (depth === 0) { ports.push(port & 0xffff, 2, v); counts['port-read']++; buffered += 4; }
    return v;
  };
  io.in32 = (port: number): number => {
    depth++;
    let v: number;
    try { v = proto.in32.call(io, port); } finally { depth--; }
    if (depth === 0) { ports.push(port & 0xffff, 4, v >>> 0); counts['port-read']++; buffered += 6; }
    return v;
  };
  cpu.tscHook = (t: bigint): bigint => { tsc.push(t); counts.rdtsc++; buffered += 8; return t; };
  const tnt = new BitWriter();
  let tips: number[] = [];
  if (spec.branches ?? true) {
    installBranchLog(cpu, {
      tnt: (_c, taken) => { tnt.push(taken); },
      tip: (_c, target) => { tips.push(target); buffered += 4; },
    });
  }

  // ---- the run, stopping at every checkpoint position ----
  const index: IndexEntry[] = [];
  let chunkStart = 0;
  const flush = (end: number): void => {
    const b = tnt.take();
    counts['tnt-bit'] += b.bits;
    counts.tip += tips.length;
    machine.console.flush();
    const con = Buffer.concat(consoleOut);
    consoleOut = [];
    const c: Chunk = { start: chunkStart, end, events, ports, tsc, tnt: b.bytes, tntBits: b.bits, tips, console: new Uint8Array(con.buffer, con.byteOffset, con.length) };
    const offset = w.section(Section.Chunk, encodeChunk(c));
    index.push({ offset, start: chunkStart, end, events: events.length, ports: ports.length / 3, tsc: tsc.length, tntBits: b.bits, tips: tips.length });
    events = []; ports = []; tsc = []; tips = []; buffered = 0;
    chunkStart = end;
  };
  const max = spec.maxInstructions;
  while (cpu.stopReason === null && cpu.instructions < max) {
    const next = Math.min((Math.floor(cpu.instructions / ck) + 1) * ck, max);
    const n = cpu.run(next - cpu.instructions);
    machine.console.flush();
    spec.onProgress?.({ instructions: cpu.instructions, cycles: cpu.cycles });
    if (cpu.instructions === next && next % ck === 0 && cpu.stopReason === null) {
      const ram = next % ramEvery === 0 ? ramDigest(cpu) : null;
      events.push({ kind: Ev.Checkpoint, pos: next, state: captureState(cpu, stateMonitor), ram });
      counts.checkpoint++;
      if (ram !== null) counts['ram-digest']++;
      buffered += 90;
      if (next - chunkStart >= CHUNK_INSTRUCTIONS || buffered + (tnt.bits >>> 3) >= CHUNK_BYTES) flush(next);
    }
    if (n === 0 && cpu.stopReason === null && !cpu.halted) break;
  }
  machine.console.flush();
  // The final state, with a RAM digest: the replay's end is checked too.
  const end = cpu.instructions;
  events.push({ kind: Ev.Checkpoint, pos: end, state: captureState(cpu, stateMonitor), ram: ramDigest(cpu) });
  counts.checkpoint!++;
  counts['ram-digest']!++;
  const finalIdle = idle();
  flush(end);
  const outcome = machine.outcome();
  const run = finishGuestRun(runSpec, prepared, outcome);
  const indexOffset = w.section(Section.Index, encodeIndex(index));
  const trailer: TraceTrailer = {
    instructions: end,
    exit: run.record.exit,
    exitStatus: run.status,
    finalIdle,
    consoleBytes: outcome.console.bytes,
    consoleSha256: outcome.console.sha256,
    counts,
  };
  w.section(Section.Trailer, new TextEncoder().encode(JSON.stringify(trailer)));
  return { bytes: w.finish(indexOffset), run };
}

/** What the trace needs of a pv monitor (`PvMonitor`'s public `virqHook` and event channels). */
export interface PvTimerAccess {
  virqHook: ((virq: number) => boolean) | null;
  readonly drivers: { readonly events: { sendVirq(virq: number): boolean } };
}

/**
 * The pv monitor's timer VIRQ hook (`PvMonitor.virqHook`, consulted where its timer sends
 * VIRQ_TIMER) and event channels: where the recorder observes, and the replayer suppresses and
 * re-sends, the virtual IRQs the hypervisor's timer sends.
 */
export function pvTimer(monitor: unknown): PvTimerAccess {
  const m = monitor as { mode?: string; virqHook?: unknown; drivers?: { events?: { sendVirq?: unknown } } };
  if (m.mode !== 'pv' || m.virqHook === undefined || typeof m.drivers?.events?.sendVirq !== 'function') throw new Error('trace: the pv monitor has no timer VIRQ hook to observe (virqHook, drivers.events.sendVirq)');
  return monitor as PvTimerAccess;
}

function sha256(b: Uint8Array): string { return createHash('sha256').update(b).digest('hex'); }
