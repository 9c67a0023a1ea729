/**
 * The `io-control` property (issue 8; docs/verification.md, "io-control"): port-I/O
 * interception under `hw` with I/O bitmaps, as KVM configured them until 2017 (every port
 * exits but the POST/delay port 0x80, `KVM_IO_PASS_THROUGH`). After a generated guest with
 * port accesses, every I/O instruction the guest executed exited to the monitor unless all
 * its ports are in the declared pass-through set (and none of those exited); and the monitor
 * counted as `attack.unassigned-port` exactly the intercepted accesses no device answers.
 *
 * Why a structural check: the hw monitor's device models are the machine's own, so an access
 * that bypasses the monitor has the same guest-visible effect as an emulated one. What the
 * bypass breaks is resource control: on real hardware a passed-through port is the host's
 * device (port 0x81 is the DMA page register of channel 2), and the monitor neither sees,
 * charges nor audits the access.
 */
import fc from 'fast-check';
import { Machine } from '../machine/machine.js';
import type { PortBus } from '../machine/port-bus.js';
import { toVmmCosts } from '../profiles/index.js';
import { HwMonitor } from '../vmm/hw/hw.js';
import { ExitReason } from '../vmm/hw/exit-reasons.js';
import { KVM_IO_PASS_THROUGH, type IoPortRange } from '../vmm/hw/vmcs.js';
import { monitorMemoryMiB } from '../vmm/index.js';
import { unassignedPort } from '../vmm/trap.js';
import { kernelAction, plainInstruction, registers } from './arbitraries.js';
import { buildGuest, LAYOUT, type GuestProgram, type Item } from './guest-program.js';
import { exitLine, verifyProfile, type Config } from './run.js';
import { report, searchProgram, type PropertyInfo } from './search.js';

/** Configurations the property runs (hw with I/O bitmaps, either paging). */
export const IO_CONFIGS: readonly Config[] = ['hw-nested', 'hw-shadow'];

/** The pass-through set the monitor is configured with and the property holds it to. */
export const IO_POLICY: readonly IoPortRange[] = KVM_IO_PASS_THROUGH;

const hex = (v: number): string => '0x' + v.toString(16);
const inPolicy = (port: number): boolean => IO_POLICY.some((r) => port >= r.from && port < r.to);
const policyText = (): string => IO_POLICY.map((r) => (r.to - r.from === 1 ? hex(r.from) : `${hex(r.from)}-${hex(r.to - 1)}`)).join(', ');

/** Whether the policy intercepts a `size`-byte access at `port` (any byte outside the set, or a wrap: SDM §25.6.4). */
function intercepted(port: number, size: number): boolean {
  if (port + size - 1 > 0xffff) return true;
  for (let i = 0; i < size; i++) if (!inPolicy(port + i)) return true;
  return false;
}

/** One I/O instruction as the bus saw it, and the monitor's I/O exits before it. */
interface Access { port: number; size: 1 | 2 | 4; isIn: boolean; instr: number; exitsBefore: number }

/**
 * Records every I/O instruction's access on `bus` (the outermost call only: a 16-bit access
 * split into bytes is one access), with the monitor's I/O-exit count at that moment.
 */
function spyBus(bus: PortBus, instr: () => number, exits: () => number): Access[] {
  const out: Access[] = [];
  let depth = 0;
  const wrap = (name: 'in8' | 'in16' | 'in32' | 'out8' | 'out16' | 'out32', size: 1 | 2 | 4, isIn: boolean): void => {
    const orig = (bus[name] as (p: number, v?: number) => number | void).bind(bus);
    (bus as unknown as Record<string, unknown>)[name] = (port: number, value?: number): number | void => {
      if (depth === 0) {
        const n = instr(), last = out[out.length - 1];
        // A REP string instruction is one access per element: keep its first.
        if (last === undefined || last.instr !== n) out.push({ port: port & 0xffff, size, isIn, instr: n, exitsBefore: exits() });
      }
      depth++;
      try { return orig(port, value); } finally { depth--; }
    };
  };
  wrap('in8', 1, true); wrap('in16', 2, true); wrap('in32', 4, true);
  wrap('out8', 1, false); wrap('out16', 2, false); wrap('out32', 4, false);
  return out;
}

/** Runs `p` under hw (`config`) with I/O bitmaps; the first interception violation (without the configuration's name), or null. */
export function ioControlRun(p: GuestProgram, config: Config, bytes = buildGuest(p)): string | null {
  if (config !== 'hw-nested' && config !== 'hw-shadow') throw new RangeError(`io-control: configuration "${config}" has no I/O bitmaps (known: ${IO_CONFIGS.join(', ')})`);
  const prof = verifyProfile().profile;
  const paging = config === 'hw-shadow' ? 'shadow' : 'nested';
  const machine = new Machine({ memoryMiB: LAYOUT.guestMiB, profile: prof, monitorMiB: monitorMemoryMiB('hw', LAYOUT.guestMiB, paging), disk: { seed: 7, sectors: 64 } });
  machine.loadFlat(bytes, 'verify-guest.bin', { loadAddress: LAYOUT.code });
  const monitor = new HwMonitor(toVmmCosts(prof), { paging, vpid: true, ioPassThrough: IO_POLICY });
  monitor.attach(machine);
  const ioExits = (): number => monitor.exitsByReason.get(ExitReason.IoInstruction) ?? 0;
  const accesses = spyBus(machine.io, () => machine.cpu.instructions, ioExits);
  machine.run({ maxInstructions: 200_000 });
  const end = exitLine(machine);
  let unassigned = 0;
  for (let i = 0; i < accesses.length; i++) {
    const a = accesses[i]!;
    const exited = (i + 1 < accesses.length ? accesses[i + 1]!.exitsBefore : ioExits()) > a.exitsBefore;
    const want = intercepted(a.port, a.size);
    const what = `${a.isIn ? 'in' : 'out'} port ${hex(a.port)} (${a.size} byte${a.size > 1 ? 's' : ''})`;
    if (want && !exited) return `${what} reached the bus without a VM exit; only ${policyText()} is passed through`;
    if (!want && exited) return `${what} exited though the monitor passes ${policyText()} through`;
    if (want && unassignedPort(machine.io, a.port, a.size, a.isIn)) unassigned++;
  }
  const counted = monitor.stats()['attack.unassigned-port'] ?? 0;
  if (counted !== unassigned) return `attack.unassigned-port is ${counted}, but the guest made ${unassigned} intercepted access(es) to ports no device answers (run: ${end})`;
  return null;
}

/** The property's check of one program under `configs`. */
export function ioControlCheck(p: GuestProgram, configs: readonly Config[] = IO_CONFIGS): string | null {
  const bytes = buildGuest(p);
  for (const c of configs) {
    const v = ioControlRun(p, c, bytes);
    if (v !== null) return `${c}: ${v}`;
  }
  return null;
}

/**
 * A port write near the pass-through set's edges (the ports just below, in and just above
 * each range), to a port of the machine's devices, or anywhere in the imm8 range: flat-harness
 * `port` items (OUT imm8, AL).
 */
export const portItem = (): fc.Arbitrary<Item> => {
  const edges = [...new Set(IO_POLICY.flatMap((r) => [r.from - 1, r.from, r.to - 1, r.to]))].filter((x) => x >= 0 && x <= 0xff);
  const port = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...edges) },
    // Debug console, PIT channel 0's neighbour, port B, CMOS index, ATA status, unassigned ones.
    { weight: 1, arbitrary: fc.constantFrom(0xe9, 0x43, 0x61, 0x70, 0xe0, 0xed) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) },
  );
  return fc.record({ op: fc.constant('port' as const), port, v: fc.integer({ min: 0, max: 255 }) });
};

/** Programs of port writes, kernel-level actions and plain instructions (paging on). */
export const ioProgram = (maxLength = 10): fc.Arbitrary<GuestProgram> => {
  const item: fc.Arbitrary<Item> = fc.oneof(
    { weight: 2, arbitrary: portItem() },
    { weight: 1, arbitrary: kernelAction() as fc.Arbitrary<Item> },
    { weight: 1, arbitrary: plainInstruction() as fc.Arbitrary<Item> },
  );
  return fc.record({ regs: registers(), items: fc.array(item, { minLength: 1, maxLength }), paging: fc.constant(true) });
};

export const ioControl: PropertyInfo = {
  name: 'io-control',
  description: `under hw with I/O bitmaps (every port intercepted but KVM's pass-through set, ${policyText()}), every I/O instruction of a generated guest exits to the monitor unless all its ports are passed through, none of those exits, and attack.unassigned-port counts exactly the intercepted accesses no device answers`,
  configs: IO_CONFIGS,
  defaultRuns: 30,
  run(o) {
    const asked = o.configs ?? IO_CONFIGS;
    const configs = asked.filter((c) => IO_CONFIGS.includes(c));
    const notes = asked.filter((c) => !IO_CONFIGS.includes(c)).map((c) => `${c} not run: no I/O bitmaps (io-control runs ${IO_CONFIGS.join(', ')})`);
    const s = searchProgram(ioProgram(), (p) => ioControlCheck(p, configs), o.runs ?? 30, o.seed ?? 1);
    return report('io-control', o, configs, s, false, [], notes);
  },
};
