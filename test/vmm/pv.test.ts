/**
 * The `pv` hypervisor model (docs/pv.md): equivalence with native on the demo-style
 * workloads, the refusal of an image without a PV note, and Xen's error codes for hostile
 * hypercalls, each counted as `attack.<what>` while the frame accounting stays consistent.
 */
import { describe, expect, it } from 'vitest';
import { buildKernel } from '../../src/guest/kernel/kernel.js';
import { buildDemoKernel } from '../../src/guest/kernel/demo.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { ImageError } from '../../src/guest/elf.js';
import { buildWorkload } from '../../src/guest/workloads/index.js';
import { EAX, EBX, ECX, EDX, ESI } from '../../src/machine/cpu/constants.js';
import { EventKind } from '../../src/machine/cpu/interrupts.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { prepareGuest, runGuest } from '../../src/trace/run-guest.js';
import { createMonitor, monitorMemoryMiB } from '../../src/vmm/index.js';
import { DOMID_SELF, HYPERCALL, MMUEXT, VCPU, VIRQ_TIMER } from '../../src/vmm/pv/abi.js';
import { XEN_ERRNO, type Mfn, type Pfn } from '../../src/vmm/pv/domain-context.js';
import { PvMonitor } from '../../src/vmm/pv/pv.js';
import { ebx } from '../../src/x86/operands.js';

const profile = loadProfile('skylake-2015');
/** The measured cycles differ by mode; everything else the guest prints must not. */
const norm = (s: string): string => s.replace(/cycles=\d+ cycles_per_op=\d+/g, 'cycles=N');

function run(name: string, params: Record<string, string>, mode: 'native' | 'pv', memoryMiB = 64): { console: string; status: number; stats: Record<string, number> } {
  const w = buildWorkload(name, params);
  let text = '';
  const r = runGuest({
    image: { bytes: toMultibootElf(w.image), path: `workload:${name}` }, devices: w.machine, mode, profile, memoryMiB,
    maxInstructions: w.maxInstructions, onConsole: (c) => { text += Buffer.from(c).toString('latin1'); },
  });
  return { console: text, status: r.status, stats: { ...r.monitor.stats() } };
}

describe('pv: equivalence with native', () => {
  for (const [name, params] of [
    ['syscall', { n: '200' }], ['syscall', { n: '200', path: 'sysenter' }], ['forkwait', { n: '5' }],
    ['pgfault', { n: '50' }], ['pagefault', { n: '16' }], ['mmap', { n: '3', pages: '4' }],
  ] as const) {
    it(`${name} ${JSON.stringify(params)}: same console and exit status`, () => {
      const n = run(name, params, 'native');
      const p = run(name, params, 'pv');
      expect(p.status).toBe(1);
      expect(norm(p.console)).toBe(norm(n.console));
      expect(p.status).toBe(n.status);
      // It really ran paravirtualized: hypercalls, validated updates, no domain crash.
      expect(p.stats['hypercall:mmu_update'] ?? 0).toBeGreaterThan(0);
      expect(p.stats['sites-patched'] ?? 0).toBeGreaterThan(100);
      expect(p.stats['domain-crash']).toBeUndefined();
    }, 60_000);
  }

  it('gives the domain the memory a native kernel sees (8 MiB machine)', () => {
    const n = run('forkwait', { n: '3' }, 'native', 8);
    const p = run('forkwait', { n: '3' }, 'pv', 8);
    expect(n.console).toMatch(/memory: \d+ free pages/);
    expect(norm(p.console)).toBe(norm(n.console));
  }, 60_000);

  it('batches the page-table updates of fork in lazy-MMU mode', () => {
    const p = run('forkwait', { n: '3' }, 'pv');
    // More updates than mmu_update calls: some went in batches (fork's copy, exit's teardown).
    expect(p.stats['mmu_update.entries']!).toBeGreaterThan(p.stats['hypercall:mmu_update']!);
    expect(p.stats['batch.mmu_update.max']!).toBeGreaterThan(1);
  }, 60_000);
});

describe('pv: the demo kernel', () => {
  it('prints what it prints natively, and every pv-op site was patched', () => {
    const bytes = toMultibootElf(buildDemoKernel());
    const out: { console: string; status: number; stats: Record<string, number> }[] = [];
    for (const mode of ['native', 'pv'] as const) {
      let text = '';
      const r = runGuest({ image: { bytes, path: 'demo' }, mode, profile, maxInstructions: 200_000_000, onConsole: (c) => { text += Buffer.from(c).toString('latin1'); } });
      out.push({ console: text, status: r.status, stats: { ...r.monitor.stats() } });
    }
    expect(out[0]!.console).toContain('init: done');
    expect(out[1]!.console).toBe(out[0]!.console);
    expect(out[1]!.status).toBe(out[0]!.status);
    expect(out[1]!.stats['sites-patched']! + out[1]!.stats['sites-pv-native']!).toBe(buildDemoKernel().pvopSites.length);
    expect(out[1]!.stats['sites-pv-native']).toBe(2); // xen_iret's own IRETs
  }, 60_000);
});

describe('pv: the domain builder', () => {
  it('refuses an image without a pv-op site table', () => {
    const machine = new Machine({ memoryMiB: 16, profile: profile.profile, monitorMiB: monitorMemoryMiB('pv', 16) });
    machine.loadFlat(new Uint8Array([0xf4]), 'flat.bin', { loadAddress: 0x100000 });
    expect(() => createMonitor('pv', { profile: profile.profile }).attach(machine)).toThrow(ImageError);
    expect(() => createMonitor('pv', { profile: profile.profile }).attach(machine)).toThrow(/paravirtualized guest/);
  });

  it('gives the domain a P2M that is not the identity, and an M2P that inverts it', () => {
    const { monitor } = boot();
    let moved = 0;
    for (let pfn = 0; pfn < 4096; pfn++) {
      const mfn = monitor.p2m(pfn as never);
      if (mfn !== pfn) moved++;
      expect(monitor.m2p(mfn)).toBe(pfn);
    }
    expect(moved).toBeGreaterThan(4000);
  });
});

/** Boots a pv kernel until its init sleeps and the kernel idles (blocked, ring 1). */
function boot(): { machine: Machine; monitor: PvMonitor; sym: (n: string) => number } {
  const image = buildKernel({
    init: 'sleeper', hz: 1000,
    programs: [{ name: 'sleeper', build: (u) => { u.a.mov(ebx, 100000); u.sys(162); u.exit(0); } }],
  });
  const machine = new Machine({ memoryMiB: 64, profile: profile.profile, monitorMiB: monitorMemoryMiB('pv', 64) });
  machine.loadMultiboot(toMultibootElf(image), 'kernel.elf');
  const monitor = createMonitor('pv', { profile: profile.profile }) as PvMonitor;
  monitor.attach(machine);
  machine.run({ maxInstructions: 3_000_000 });
  const sym = (n: string): number => image.symbols.find((s) => s.name === n)!.addr;
  return { machine, monitor, sym };
}

/** A hypercall from the guest kernel: INT 0x82 as the CPU would offer it to the monitor. */
function hypercall(machine: Machine, monitor: PvMonitor, nr: number, ...args: number[]): number {
  const cpu = machine.cpu;
  expect(cpu.cpl).toBe(1);
  const regs = [EBX, ECX, EDX, ESI];
  cpu.r32[EAX] = nr;
  args.forEach((v, i) => { cpu.r32[regs[i]!] = v; });
  expect(monitor.onEvent(cpu, 0x82, -1, EventKind.Software)).toBe(true);
  return cpu.r32[EAX]!;
}

function putGuest(monitor: PvMonitor, va: number, words: number[]): void {
  const b = new Uint8Array(words.length * 4);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  expect(monitor.copyToGuest(va, b)).toBe(true);
}

describe('pv: hostile hypercalls get Xen error codes and are counted', () => {
  const KV = 0xc000_0000;

  it('mmu_update: a foreign frame, a writable mapping of a pinned table, the hypervisor slot', () => {
    const { machine, monitor, sym } = boot();
    const mm = monitor.mm;
    const req = sym('xen_req');
    const entry = mm.entryFor(KV + 8191 * 4096); // the direct map's last entry (a free page)
    expect(entry).toBeGreaterThan(0);
    const before = machine.mem.read32(entry);
    const mmu = (ptr: number, val: number): number => {
      putGuest(monitor, req, [ptr, 0, val, 0]);
      return hypercall(machine, monitor, HYPERCALL.mmu_update, req, 1, 0, DOMID_SELF);
    };
    // A frame of the hypervisor's memory (above guest RAM): not the domain's.
    const foreign = (machine.mem.guestSize >>> 12) + 3;
    expect(mmu(entry, (foreign << 12) | 3)).toBe(-XEN_ERRNO.EPERM);
    // The running directory, writable: it is pinned as an L2.
    expect(mmu(entry, (mm.base << 12) | 3)).toBe(-XEN_ERRNO.EINVAL);
    // The hypervisor's slots of the directory (the window at 0xFFC00000).
    expect(mmu(mm.base * 4096 + 1023 * 4, (mm.base << 12) | 1)).toBe(-XEN_ERRNO.EINVAL);
    // Another domain's request.
    putGuest(monitor, req, [entry, 0, before, 0]);
    expect(hypercall(machine, monitor, HYPERCALL.mmu_update, req, 1, 0, 5)).toBe(-XEN_ERRNO.EPERM);
    // Nothing changed, and the same update with a legal value goes through.
    expect(machine.mem.read32(entry)).toBe(before);
    expect(mmu(entry, before)).toBe(0);
    const s = monitor.stats();
    expect(s['attack.foreign-frame']).toBe(1);
    expect(s['attack.writable-pagetable']).toBe(1);
    expect(s['attack.hypervisor-slot']).toBe(1);
    expect(s['attack.foreign-domain']).toBe(1);
    expect(mm.audit()).toEqual([]);
  }, 60_000);

  it('a back end cannot take a writable grant mapping of a page-table frame (the hypervisor answers for the grant table)', () => {
    const { monitor } = boot();
    const mm = monitor.mm;
    // The running directory is pinned as an L2: no writable reference for it.
    expect(monitor.getWritableRef(mm.base as Mfn)).toBe(false);
    // A plain frame of the domain can be mapped writable, and the reference is dropped again.
    const plain = monitor.p2m(0x2000 as Pfn); // 32 MiB into the 64 MiB domain: a plain page
    expect(monitor.getWritableRef(plain)).toBe(true);
    monitor.putWritableRef(plain);
    expect(mm.audit()).toEqual([]);
  }, 60_000);

  it('mmuext_op: pinning a writable frame, unpinning what is not pinned, unpinning a table in use', () => {
    const { machine, monitor, sym } = boot();
    const mm = monitor.mm;
    const ops = sym('xen_op');
    const ext = (cmd: number, mfn: number): number => {
      putGuest(monitor, ops, [cmd, mfn, 0]);
      return hypercall(machine, monitor, HYPERCALL.mmuext_op, ops, 1, 0, DOMID_SELF);
    };
    // A page the kernel maps writable (its direct map of a free frame) cannot become a table.
    const dataMfn = machine.mem.read32(mm.entryFor(KV + 8191 * 4096)) >>> 12;
    expect(ext(MMUEXT.PIN_L1_TABLE, dataMfn)).toBe(-XEN_ERRNO.EINVAL);
    expect(ext(MMUEXT.UNPIN_TABLE, dataMfn)).toBe(-XEN_ERRNO.EINVAL);
    expect(ext(MMUEXT.PIN_L1_TABLE, (machine.mem.guestSize >>> 12) + 1)).toBe(-XEN_ERRNO.EPERM);
    // An L1 still linked from the directory: unpinning drops only the pin (as Xen); the table
    // stays typed by its use, so it still cannot be mapped writable.
    const l1 = machine.mem.read32(mm.base * 4096 + (KV >>> 22) * 4) >>> 12;
    expect(ext(MMUEXT.UNPIN_TABLE, l1)).toBe(0);
    expect(mm.typeCount[l1]).toBeGreaterThan(0);
    const req = sym('xen_req');
    putGuest(monitor, req, [mm.entryFor(KV + 8191 * 4096), 0, (l1 << 12) | 3, 0]);
    expect(hypercall(machine, monitor, HYPERCALL.mmu_update, req, 1, 0, DOMID_SELF)).toBe(-XEN_ERRNO.EINVAL);
    expect(ext(MMUEXT.PIN_L1_TABLE, l1)).toBe(0);
    const s = monitor.stats();
    expect(s['attack.type-conflict-writable-as-l1']).toBe(1);
    expect(s['attack.unpin-not-pinned']).toBe(1);
    expect(s['attack.foreign-frame']).toBe(1);
    expect(s['attack.writable-pagetable']).toBe(1);
    expect(mm.audit()).toEqual([]);
  }, 60_000);

  it('multicall reports each entry\'s result; vcpu_op refuses another vCPU', () => {
    const { machine, monitor, sym } = boot();
    const mm = monitor.mm;
    const list = sym('xen_mc2');
    const ops = sym('xen_op');
    // Entry 0: mmuext_op(pin a foreign frame); entry 1: xen_version.
    putGuest(monitor, ops, [MMUEXT.PIN_L1_TABLE, (machine.mem.guestSize >>> 12) + 2, 0]);
    putGuest(monitor, list, [HYPERCALL.mmuext_op, 0, ops, 1, 0, DOMID_SELF, 0, 0, HYPERCALL.xen_version, 0, 0, 0, 0, 0, 0, 0]);
    expect(hypercall(machine, monitor, HYPERCALL.multicall, list, 2)).toBe(0);
    expect(machine.mem.read32(monitor.guestPhys(list + 4, false))).toBe(-XEN_ERRNO.EPERM);
    expect(machine.mem.read32(monitor.guestPhys(list + 36, false))).toBe(3 << 16);
    expect(hypercall(machine, monitor, HYPERCALL.vcpu_op, 6, 1, ops)).toBe(-XEN_ERRNO.ENOENT);
    expect(monitor.stats()['attack.bad-vcpu']).toBe(1);
    expect(mm.audit()).toEqual([]);
  }, 60_000);

  it('an unknown hypercall number gives -ENOSYS', () => {
    const { machine, monitor } = boot();
    expect(hypercall(machine, monitor, 99)).toBe(-XEN_ERRNO.ENOSYS);
    expect(hypercall(machine, monitor, 40)).toBe(-XEN_ERRNO.ENOSYS);
    expect(monitor.stats()['attack.bad-hypercall']).toBe(2);
  }, 60_000);

  it('set_trap_table and stack_switch refuse ring-0 selectors', () => {
    const { machine, monitor, sym } = boot();
    const tbl = sym('xen_req');
    putGuest(monitor, tbl, [0x0010_0e00 | 14, 0xc0100000, 0, 0]); // vector 14, selector 0x10 (a data segment)
    expect(hypercall(machine, monitor, HYPERCALL.set_trap_table, tbl)).toBe(-XEN_ERRNO.EPERM);
    expect(hypercall(machine, monitor, HYPERCALL.stack_switch, 0x18, 0xc0100000)).toBe(-XEN_ERRNO.EPERM);
    expect(monitor.stats()['attack.bad-selector']).toBe(1);
    expect(monitor.stats()['attack.bad-stack-selector']).toBe(1);
  }, 60_000);
});

describe('pv: event upcalls respect vcpu_info.evtchn_upcall_mask', () => {
  it('holds a VIRQ while masked and delivers it at the next hypercall after unmasking', () => {
    const { machine, monitor, sym } = boot();
    const cpu = machine.cpu;
    const si = monitor.sharedInfoMfn * 4096;
    const callback = sym('xen_hypervisor_callback');
    machine.mem.u8[si + VCPU.UPCALL_MASK] = 1; // the guest masks events (irq-disable)
    machine.mem.u8[si + VCPU.UPCALL_PENDING] = 0;
    // No event in flight: the timer port's pending bit and the selector clear.
    const port = monitor.drivers.events.virqBinding(VIRQ_TIMER);
    expect(port).toBeGreaterThan(0);
    machine.mem.write32(si + 2048 + (port >>> 5) * 4, 0);
    machine.mem.write32(si + VCPU.PENDING_SEL, 0);
    const eip = cpu.eip, before = monitor.stats()['upcalls'] ?? 0;
    expect(monitor.drivers.events.sendVirq(VIRQ_TIMER)).toBe(true);
    expect(machine.mem.u8[si + VCPU.UPCALL_PENDING]).toBe(1);
    expect(cpu.eip).toBe(eip);
    expect(monitor.stats()['upcalls'] ?? 0).toBe(before);
    // A hypercall with events still masked: nothing.
    expect(hypercall(machine, monitor, HYPERCALL.xen_version)).toBe(3 << 16);
    expect(cpu.eip).toBe(eip);
    // Unmasked (irq-enable): the next return from the hypervisor enters the event callback,
    // with events masked again and the interrupted EIP in the bounce frame.
    machine.mem.u8[si + VCPU.UPCALL_MASK] = 0;
    hypercall(machine, monitor, HYPERCALL.xen_version);
    expect(cpu.eip).toBe(callback);
    expect(machine.mem.u8[si + VCPU.UPCALL_MASK]).toBe(1);
    expect(monitor.stats()['upcalls']).toBe(before + 1);
    const frameEip = machine.mem.read32(monitor.guestPhys(cpu.r32[4]!, false));
    expect(frameEip >>> 0).toBe(eip >>> 0);
  }, 60_000);
});

describe('pv: event-channel interrupts acknowledge no PIC', () => {
  it('emulated port I/O does not grow with upcalls: only the boot-time UART/PIC setup and the workload\'s own `in`', () => {
    // database: blkback completions (one upcall each); forkwait n=60: VIRQ_TIMER ticks; syscall: none.
    const db = run('database', { txns: '10', dbsize: '16' }, 'pv').stats;
    const fw = run('forkwait', { n: '60' }, 'pv').stats;
    const sc = run('syscall', { n: '200' }, 'pv').stats;
    expect(db['upcalls'] ?? 0).toBeGreaterThan(10);
    expect(fw['upcalls'] ?? 0).toBeGreaterThan(0);
    expect(fw['evtchn.hypervisorSends'] ?? 0).toBeGreaterThan(0);
    const boot = sc['emulate:io'] ?? 0;
    expect(boot).toBeGreaterThan(0);
    expect(db['emulate:io']).toBe(boot);
    expect(fw['emulate:io']).toBe(boot);
    // The count is live: a workload that does port I/O itself gets one emulation per access.
    const io = run('in', { n: '40' }, 'pv').stats;
    expect(io['emulate:io']).toBe(boot + 40);
  }, 120_000);
});

describe('pv: the timer VIRQ hook (virqHook)', () => {
  const prepare = (): { monitor: PvMonitor; go: () => void } => {
    const w = buildWorkload('forkwait', { n: '60' });
    const spec = { image: { bytes: toMultibootElf(w.image), path: 'workload:forkwait' }, devices: w.machine, mode: 'pv' as const, profile, memoryMiB: 64 };
    const p = prepareGuest(spec);
    return { monitor: p.monitor as PvMonitor, go: () => { p.machine.run({ maxInstructions: w.maxInstructions }); } };
  };

  it('sees every VIRQ_TIMER the timer sends; false lets the hypervisor send it', () => {
    const { monitor, go } = prepare();
    const seen: number[] = [];
    monitor.virqHook = (virq) => { seen.push(virq); return false; };
    go();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((v) => v === VIRQ_TIMER)).toBe(true);
    expect(monitor.stats()['evtchn.hypervisorSends']).toBe(seen.length);
  }, 60_000);

  it('true means handled: the hypervisor sends nothing', () => {
    const { monitor, go } = prepare();
    let calls = 0;
    monitor.virqHook = () => { calls++; return true; };
    go();
    expect(calls).toBeGreaterThan(0);
    expect(monitor.stats()['evtchn.hypervisorSends'] ?? 0).toBe(0);
    expect(monitor.stats()['upcalls'] ?? 0).toBe(0);
  }, 60_000);
});
