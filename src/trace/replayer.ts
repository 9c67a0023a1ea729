/**
 * The trace replayer: re-executes a recorded guest under any mode with every input taken
 * from the trace at its logical position (docs/trace-format.md). The devices' own timing
 * models still run in the mode's time, but are cut off from the guest: their interrupt line
 * does not reach the CPU (the replayer injects the recorded vectors), their register reads
 * return the recorded values, the disk and NIC take their completions and frames from the
 * trace. A divergence — the guest not where the trace says, or in another state — stops the
 * replay with the position, expected and actual, and the instruction there.
 */
import { FAULT, type StopReason } from '../machine/cpu/cpu.js';
import { CS } from '../machine/cpu/constants.js';
import { deliverEvent, EventKind } from '../machine/cpu/interrupts.js';
import { disassemble } from '../machine/disassemble.js';
import { InputMismatchError } from '../machine/devices/device-io.js';
import type { RunProgress } from '../machine/machine.js';
import { PortBus } from '../machine/port-bus.js';
import type { LoadedProfile } from '../profiles/index.js';
import type { MonitorMode } from '../vmm/index.js';
import { installBranchLog } from './branch-log.js';
import { readTrace, type Trace } from './reader.js';
import { pvTimer } from './recorder.js';
import { finishGuestRun, prepareGuest, type GuestRun, type GuestRunSpec, type ModeOptions } from './run-guest.js';
import { captureState, Ev, guestControlRegisters, hex32, hexBytes, ramDigest, STATE_CR_FIRST, STATE_FIELDS, type TraceEvent } from './trace-data.js';

/** How to replay. */
export interface ReplayOptions {
  readonly mode: MonitorMode;
  readonly modeOptions?: ModeOptions;
  readonly profile: LoadedProfile;
  /** The trace's name in messages (default "<trace>"). */
  readonly file?: string;
  /** Compare guest-RAM digests at the checkpoints that have one (default true). */
  readonly checkRam?: boolean;
  /**
   * Check the control-flow log branch by branch (default false: the checkpoints and event
   * positions only). It runs the replay in the interpreter, like the recording.
   */
  readonly checkBranches?: boolean;
  /**
   * After a divergence found without branch checking, replay again with it to find the
   * first branch that went the other way (default true; needs a trace with a control-flow log).
   */
  readonly localize?: boolean;
  readonly onConsole?: (chunk: Uint8Array) => void;
  readonly onProgress?: (p: RunProgress) => void;
}

/** Where and how a replay left the recorded path. */
export interface Divergence {
  /** Logical instructions retired when it was found. */
  readonly position: number;
  readonly what: string;
  readonly expected: string;
  readonly actual: string;
  /** Linear address and disassembly of the instruction at the guest's EIP (or being executed). */
  readonly instruction: string;
}

/** A finished replay: the run (up to the divergence, if any) and the divergence or null. */
export interface ReplayRun extends GuestRun {
  readonly divergence: Divergence | null;
  readonly trace: Trace;
}

/** Thrown from inside the CPU's run (a port read or RDTSC off the record); caught below. */
class Diverged extends Error {
  constructor(readonly d: Divergence) { super(d.what); }
}

/** One line for a divergence, as `virtlab replay` prints it. */
export function formatDivergence(d: Divergence): string {
  return `replay diverged at logical instruction ${d.position}: ${d.what}: expected ${d.expected}, actual ${d.actual}; at ${d.instruction}`;
}

/** Replays trace `bytes` (TraceFormatError if it cannot be read). */
export function replayTrace(bytes: Uint8Array | Trace, options: ReplayOptions): ReplayRun {
  const trace = bytes instanceof Uint8Array ? readTrace(bytes, options.file ?? '<trace>') : bytes;
  const h = trace.header;
  checkReplayMode(h.mode ?? 'native', options.mode);
  const pv = h.mode === 'pv';
  if (h.image.flat?.mode === 'real' && options.mode !== 'native') throw new RangeError(`--mode ${options.mode} needs a protected-mode start; this trace's guest starts in real mode`);
  const devices = {
    ...(h.machine.disk !== null ? { disk: { image: trace.disk!.slice(), seed: h.machine.disk.seed, name: h.machine.disk.name, ...(h.machine.disk.bmBase !== null ? { bmBase: h.machine.disk.bmBase } : {}) } } : {}),
    ...(h.machine.nic !== null ? {
      nic: {
        seed: h.machine.nic.seed, name: h.machine.nic.name,
        ...(h.machine.nic.ioBase !== null ? { ioBase: h.machine.nic.ioBase } : {}),
        ...(h.machine.nic.guestMac !== null ? { guestMac: h.machine.nic.guestMac } : {}),
        ...(h.machine.nic.peerMac !== null ? { peerMac: h.machine.nic.peerMac } : {}),
      },
    } : {}),
  };
  const runSpec: GuestRunSpec = {
    image: { bytes: trace.image, path: h.image.path },
    flat: h.image.flat ?? undefined,
    cmdline: h.image.cmdline,
    memoryMiB: h.machine.memoryMiB,
    devices,
    mode: options.mode,
    modeOptions: options.modeOptions,
    profile: options.profile,
    maxInstructions: h.maxInstructions,
    onConsole: options.onConsole,
  };
  // The recorded console output, checked as the replay's comes (after every run slice).
  const expectedConsole = Buffer.concat(trace.chunks.map((c) => c.console));
  let consoleAt = 0;
  let consoleCheck = true;
  let consoleDiff: Divergence | null = null;
  const prepared = prepareGuest({
    ...runSpec,
    onConsole: (b) => {
      options.onConsole?.(b);
      if (!consoleCheck || consoleDiff !== null) return;
      for (let i = 0; i < b.length; i++) {
        if (expectedConsole[consoleAt + i] !== b[i]) {
          const at = consoleAt + i;
          consoleDiff = {
            position: cpu.instructions, what: `console output byte ${at}`,
            expected: at < expectedConsole.length ? JSON.stringify(expectedConsole.subarray(at, at + 24).toString('latin1')) : 'no more output',
            actual: JSON.stringify(Buffer.from(b.subarray(i, i + 24)).toString('latin1')), instruction: where(),
          };
          return;
        }
      }
      consoleAt += b.length;
    },
  });
  const { machine, monitor } = prepared;
  const cpu = machine.cpu;
  const ata = machine.disk, nic = machine.nic;
  if (ata !== null) ata.disk.inputSource = 'external';
  if (nic !== null) nic.link.setInputSource('external');

  // Inside an instruction (a port read, RDTSC) the instruction is at instrStart, else at EIP.
  let inInstruction = false;
  const where = (): string => {
    const lin = (cpu.segBase[CS]! + ((inInstruction ? cpu.instrStart : cpu.eip) >>> 0)) >>> 0;
    const bytesAt: number[] = [];
    for (let i = 0; i < 15; i++) bytesAt.push(cpu.peekLinear8(lin + i));
    const d = disassemble(bytesAt, lin, cpu.cs32 ? 32 : 16);
    return `${hex32(lin)}: ${d.text}`;
  };
  const diverge: (what: string, expected: string, actual: string) => never = (what, expected, actual) => {
    throw new Diverged({ position: cpu.instructions, what, expected, actual, instruction: where() });
  };

  // ---- cut the devices' interrupt line off from the CPU; the replayer raises it ----
  // (Through the PIC's output, not by overriding a CPU method: a new own property on the CPU
  // would change its hidden class and slow every access to it.)
  machine.pic.setIntr = (): void => { /* the PIC's requests: the trace decides what the CPU sees */ };
  if (cpu.intrLine) cpu.setIntrLine(false);

  // ---- pv: the hypervisor's timer is cut off from the guest; the replayer sends its VIRQs ----
  // (Its clock timer still runs in this run's time, but what it sends is dropped: the
  // recorded sends are made at their positions through the same event channels.)
  let sendVirq: ((virq: number) => boolean) | null = null;
  if (pv) {
    const m = pvTimer(monitor);
    const ev = m.drivers.events;
    sendVirq = ev.sendVirq.bind(ev);
    m.virqHook = (): boolean => true; // handled: dropped
  }

  // ---- port reads and RDTSC from the trace ----
  const ports: number[] = [];
  const tsc: bigint[] = [];
  const portsAtChunkEnd: number[] = [];
  const tscAtChunkEnd: number[] = [];
  for (const c of trace.chunks) {
    for (const v of c.ports) ports.push(v);
    for (const t of c.tsc) tsc.push(t);
    portsAtChunkEnd.push(ports.length);
    tscAtChunkEnd.push(tsc.length);
  }
  let pi = 0, ti = 0;
  const io = machine.io;
  const proto = PortBus.prototype;
  let depth = 0;
  const take = (port: number, width: number): number => {
    inInstruction = true;
    if (pi >= ports.length) diverge('port read beyond those recorded', `no more reads (${ports.length / 3} recorded)`, `in from port 0x${(port & 0xffff).toString(16)}`);
    const rp = ports[pi]!, rw = ports[pi + 1]!, rv = ports[pi + 2]!;
    if (rp !== (port & 0xffff) || rw !== width) diverge(`port read #${pi / 3 + 1}`, `${rw}-byte in from port 0x${rp.toString(16)}`, `${width}-byte in from port 0x${(port & 0xffff).toString(16)}`);
    pi += 3;
    inInstruction = false;
    return rv;
  };
  io.in8 = (port: number): number => {
    const v = proto.in8.call(io, port);
    return depth === 0 ? take(port, 1) & 0xff : v;
  };
  io.in16 = (port: number): number => {
    depth++;
    let v: number;
    try { v = proto.in16.call(io, port); } finally { depth--; }
    return depth === 0 ? take(port, 2) & 0xffff : v;
  };
  io.in32 = (port: number): number => {
    depth++;
    let v: number;
    try { v = proto.in32.call(io, port); } finally { depth--; }
    return depth === 0 ? take(port, 4) | 0 : v;
  };
  // ---- the control-flow log ----
  let tk = 0, tb = 0, tntSeen = 0, tipI = 0;
  const tipsAll: number[] = [];
  const tntAtChunkEnd: number[] = [];
  const tipsAtChunkEnd: number[] = [];
  let tntTotal = 0;
  for (const c of trace.chunks) {
    for (const t of c.tips) tipsAll.push(t);
    tntTotal += c.tntBits;
    tntAtChunkEnd.push(tntTotal);
    tipsAtChunkEnd.push(tipsAll.length);
  }
  const checkBranches = (options.checkBranches ?? false) && (tntTotal > 0 || tipsAll.length > 0);
  if (checkBranches) {
    const chunks = trace.chunks;
    installBranchLog(cpu, {
      tnt: (_c, taken) => {
        inInstruction = true;
        while (tk < chunks.length && tb >= chunks[tk]!.tntBits) { tk++; tb = 0; }
        if (tk >= chunks.length) diverge('conditional branch beyond those recorded', `no more (${tntTotal} recorded)`, taken ? 'taken' : 'not taken');
        const ch = chunks[tk]!;
        const expected = ((ch.tnt[tb >>> 3]! >>> (tb & 7)) & 1) === 1;
        tb++;
        tntSeen++;
        if (expected !== taken) diverge(`conditional branch #${tntSeen}`, expected ? 'taken' : 'not taken', taken ? 'taken' : 'not taken');
        inInstruction = false;
      },
      tip: (_c, target) => {
        inInstruction = true;
        if (tipI >= tipsAll.length) diverge('indirect branch beyond those recorded', `no more (${tipsAll.length} recorded)`, `to ${hex32(target)}`);
        const expected = tipsAll[tipI++]!;
        if (expected !== target) diverge(`indirect branch #${tipI} target`, hex32(expected), hex32(target));
        inInstruction = false;
      },
    });
  }
  cpu.tscHook = (): bigint => {
    inInstruction = true;
    if (ti >= tsc.length) diverge('RDTSC beyond those recorded', `no more (${tsc.length} recorded)`, 'RDTSC');
    inInstruction = false;
    return tsc[ti++]!;
  };

  // ---- the run, event by event ----
  const checkRam = options.checkRam ?? true;
  const runTo = (pos: number): void => {
    while (cpu.instructions < pos) {
      if (cpu.stopReason !== null) diverge('the guest stopped early', `running to logical instruction ${pos}`, `stopped (${describeStop(cpu.stopReason)})`);
      if (cpu.halted) diverge('the guest halted early', `running to logical instruction ${pos}`, 'HLT, waiting for an interrupt the trace does not have here');
      cpu.run(Math.min(pos - cpu.instructions, 1_000_000));
      machine.console.flush();
      if (consoleDiff !== null) throw new Diverged(consoleDiff);
      options.onProgress?.({ instructions: cpu.instructions, cycles: cpu.cycles });
    }
    if (cpu.instructions > pos) diverge('logical instruction count overshot', `${pos}`, `${cpu.instructions}`);
  };
  const atEvent = (e: Exclude<TraceEvent, { kind: 4 }>): void => {
    if (cpu.stopReason !== null) diverge(`${kindName(e.kind)} for a stopped guest`, 'a running guest', `stopped (${describeStop(cpu.stopReason)})`);
    if ((cpu.eip >>> 0) !== e.eip) diverge(`EIP at ${kindName(e.kind)}`, hex32(e.eip), hex32(cpu.eip));
    if (e.idle > 0) {
      // The recording waited halted this long for the event (the outside world's time).
      if (!cpu.halted) diverge(`${kindName(e.kind)} after idling`, 'a halted CPU (HLT)', 'a running CPU');
      cpu.cycles += e.idle;
      cpu.idleCycles += e.idle;
    }
  };
  const deliver = (vector: number): void => {
    // As the CPU does between instructions, or when an interrupt wakes it from HLT.
    cpu.halted = false;
    cpu.instrStart = cpu.eip;
    cpu.setIntrLine(true);
    try {
      deliverEvent(cpu, vector, -1, EventKind.External);
    } catch (e) {
      if (e !== FAULT) throw e;
    }
    cpu.setIntrLine(false);
    cpu.updateAttention();
  };
  const state = new Uint32Array(20);
  let chunkNo = 0;
  let divergence: Divergence | null = null;
  try {
    for (const chunk of trace.chunks) {
      for (const e of chunk.events) {
        runTo(e.pos);
        switch (e.kind) {
          case Ev.Interrupt: atEvent(e); deliver(e.vector); break;
          case Ev.Virq: atEvent(e); sendVirq!(e.virq); break;
          case Ev.BlockComplete:
          case Ev.NetRx: {
            atEvent(e);
            const dev = e.kind === Ev.BlockComplete ? ata?.disk : nic?.link;
            if (dev === undefined || dev.name !== e.device) diverge('device input', `device ${e.device}`, 'no such device');
            try {
              dev.applyInput({ device: e.device, kind: e.kind === Ev.BlockComplete ? 'block-complete' : 'net-rx', seq: e.seq, data: e.kind === Ev.NetRx ? e.data.slice() : null });
            } catch (x) {
              if (x instanceof InputMismatchError) diverge('device input', `${x.input.kind} #${x.input.seq} to fit the device`, x.message);
              throw x;
            }
            break;
          }
          case Ev.Checkpoint: {
            captureState(cpu, monitor, state);
            const crs = guestControlRegisters(cpu, monitor) !== null;
            for (let i = 0; i < state.length; i++) {
              if (i >= STATE_CR_FIRST && !crs) break;
              if (state[i] !== e.state[i]) diverge(`checkpoint: ${STATE_FIELDS[i]}`, hex32(e.state[i]!), hex32(state[i]!));
            }
            if (e.ram !== null && checkRam) {
              const r = ramDigest(cpu);
              if (hexBytes(r) !== hexBytes(e.ram)) diverge('checkpoint: guest RAM digest (SHA-256, first 16 bytes)', hexBytes(e.ram), hexBytes(r));
            }
            break;
          }
        }
      }
      runTo(chunk.end);
      if (pi !== portsAtChunkEnd[chunkNo]! || ti !== tscAtChunkEnd[chunkNo]!) {
        diverge('reads by the end of a chunk', `${portsAtChunkEnd[chunkNo]! / 3} port reads and ${tscAtChunkEnd[chunkNo]} RDTSC`, `${pi / 3} and ${ti}`);
      }
      if (checkBranches && (tntSeen !== tntAtChunkEnd[chunkNo]! || tipI !== tipsAtChunkEnd[chunkNo]!)) {
        diverge('branches by the end of a chunk', `${tntAtChunkEnd[chunkNo]} conditional and ${tipsAtChunkEnd[chunkNo]} indirect`, `${tntSeen} and ${tipI}`);
      }
      chunkNo++;
    }
    // How the recording ended.
    const t = trace.trailer;
    const reason = String(t.exit.reason);
    if (reason === 'halt' && cpu.stopReason === null) {
      if (!cpu.halted) diverge('end of the trace', 'a halted guest', 'a running guest');
      cpu.cycles += t.finalIdle;
      cpu.idleCycles += t.finalIdle;
      cpu.stop({ kind: 'halt', detail: String(t.exit.detail ?? 'halted') });
    }
    machine.console.flush();
    if (consoleDiff !== null) throw new Diverged(consoleDiff);
    if (consoleAt !== expectedConsole.length) diverge('console output at the end', `${expectedConsole.length} bytes`, `${consoleAt} bytes`);
    const actual = cpu.stopReason === null ? 'instruction-limit' : cpu.stopReason.kind;
    if (actual !== reason) diverge('end of the trace', `the run ending with ${reason}`, `${actual}${cpu.stopReason !== null ? ` (${describeStop(cpu.stopReason)})` : ''}`);
  } catch (x) {
    if (!(x instanceof Diverged)) throw x;
    divergence = x.d;
  }
  consoleCheck = false;
  machine.console.flush();
  const outcome = machine.outcome();
  const run = finishGuestRun(runSpec, prepared, outcome);
  if (divergence !== null && !checkBranches && (options.localize ?? true) && (tntTotal > 0 || tipsAll.length > 0)) {
    // Pinpoint it: the first branch that went the other way, if control flow diverged first.
    const again = replayTrace(trace, { ...options, checkBranches: true, localize: false, onConsole: undefined, onProgress: undefined });
    const d = again.divergence;
    if (d !== null && d.position <= divergence.position && d.what !== divergence.what) {
      divergence = { ...d, what: `${d.what} (the first sign; without branch checking the replay found: ${divergence.what}, at ${divergence.position})` };
    }
  }
  return { ...run, divergence, trace };
}

function kindName(k: number): string {
  return k === Ev.Interrupt ? 'interrupt' : k === Ev.Virq ? 'virtual IRQ' : k === Ev.BlockComplete ? 'block completion' : k === Ev.NetRx ? 'frame arrival' : 'event';
}

/**
 * Thrown before a replay starts when the trace's recording mode and the replay's do not go
 * together: a pv trace (a paravirtualized guest) replays under pv only; a native trace
 * cannot replay under pv. A RangeError, as for the other refused mode combinations.
 */
export class TraceModeError extends RangeError {
  override readonly name = 'TraceModeError';
  constructor(readonly recordedMode: 'native' | 'pv', readonly replayMode: MonitorMode, message: string) { super(message); }
}

/** Refuses (TraceModeError) a replay mode the trace's recording mode cannot replay under. */
export function checkReplayMode(recorded: 'native' | 'pv', mode: MonitorMode): void {
  if (recorded === 'pv' && mode !== 'pv') {
    throw new TraceModeError(recorded, mode, `this trace was recorded under pv: its guest is a paravirtualized kernel (hypercalls, split-driver front ends, no port I/O) that cannot run ${mode === 'native' ? 'natively' : `under ${mode}`}; replay it with --mode pv`);
  }
  if (recorded === 'native' && mode === 'pv') {
    throw new TraceModeError(recorded, mode, 'this trace was recorded natively: under pv the kernel runs its paravirtualized flavour (another instruction stream, inputs as event-channel upcalls), so it cannot follow a native trace; record it with virtlab record --mode pv and replay that');
  }
}

function describeStop(s: StopReason): string {
  switch (s.kind) {
    case 'exit-device': return `exit device, code ${s.code}`;
    case 'unsupported': return `unsupported instruction at ${hex32(s.address)}: ${s.detail}`;
    default: return `${s.kind}: ${s.detail}`;
  }
}
