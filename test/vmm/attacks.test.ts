// A guest that attacks the monitor (issue 4, "Bad input"; item 5 of the closing work) gets
// the architectural answer — all ones from memory and ports with nothing behind them, writes
// dropped, DMA refused with the device's error bit — never reaches monitor memory, and is
// counted in the monitor's run-record counters (`attack.*`). Also: interrupt-window exiting
// under `hw` (item 4). Tiny flat guests assembled with src/x86.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { guestRamDma } from '../../src/machine/devices/block-device.js';
import { E1000_IO_BASE, E1000_REG, E1000_TCTL, E1000_TXD_CMD } from '../../src/machine/devices/nic.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { loadProfile, toVmmCosts } from '../../src/profiles/index.js';
import { Assembler, al, cr0, cr3, dword, dx, eax, ebx, ecx, edi, edx, esi, esp, fword } from '../../src/x86/index.js';
import { createMonitor, monitorMemoryMiB, type Monitor } from '../../src/vmm/index.js';
import { ExitReason } from '../../src/vmm/hw/exit-reasons.js';
import { HwMonitor } from '../../src/vmm/hw/hw.js';

const PROFILE = loadProfile('skylake-2015').profile;
const GUEST_MIB = 8;
const GUEST_BYTES = GUEST_MIB << 20;
/** A frame just past the guest's RAM: monitor memory under every monitor that has some. */
const BEYOND = GUEST_BYTES + 0x1000;
/** A port no device of the machine answers. */
const FREE_PORT = 0x300;
const PATTERN = 0x5a5a5a5a;
/** The exit device's status for `out 0xf4, 0` (what `finish` writes when every check passed). */
const PASSED = { reason: 'exit-device', code: 1 };

type Mode = 'native' | 'trap' | 'full' | 'hw-shadow' | 'hw-nested';
const MODES: Mode[] = ['native', 'trap', 'full', 'hw-shadow', 'hw-nested'];

function monitorFor(mode: Mode): Monitor | null {
  if (mode === 'native') return null;
  if (mode === 'hw-shadow') return createMonitor('hw', { profile: PROFILE, paging: 'shadow' });
  if (mode === 'hw-nested') return createMonitor('hw', { profile: PROFILE, paging: 'nested' });
  return createMonitor(mode, { profile: PROFILE });
}

function monitorMiB(mode: Mode): number {
  if (mode === 'native') return 0;
  if (mode === 'hw-shadow') return monitorMemoryMiB('hw', GUEST_MIB, 'shadow');
  if (mode === 'hw-nested') return monitorMemoryMiB('hw', GUEST_MIB, 'nested');
  return monitorMemoryMiB(mode, GUEST_MIB);
}

/** Flat bytes of an assembled program at 0x100000 (one text section). */
function flat(a: Assembler): Uint8Array {
  const built = a.build();
  const text = built.sections.find((s) => s.name === 'text')!;
  return text.bytes;
}

/** Exit through the debug-exit port: `ok` when every EAX-compare passed. */
function finish(a: Assembler, bad: ReturnType<Assembler['label']>): void {
  a.mov(al, 0); a.out(0xf4, al);
  a.bind(bad);
  a.mov(al, 1); a.out(0xf4, al);
}

function run(mode: Mode, bytes: Uint8Array, disk = false) {
  const m = new Machine({ profile: PROFILE, memoryMiB: GUEST_MIB, monitorMiB: monitorMiB(mode), disk: disk ? { seed: 1, sectors: 64 } : undefined });
  m.loadFlat(bytes, 'attack.bin', { loadAddress: 0x100000 });
  const mon = monitorFor(mode);
  mon?.attach(m);
  const o = m.run({ maxInstructions: 200_000 });
  return { m, o, stats: mon?.stats() ?? {} };
}

/** Monitor memory holds no copy of the guest's pattern (its writes went nowhere). */
function noPatternAboveGuest(m: Machine): void {
  const i32 = m.mem.i32;
  for (let i = m.mem.guestSize >>> 2; i < i32.length; i++) if (i32[i] === PATTERN) throw new Error(`pattern at 0x${(i * 4).toString(16)}`);
}

/**
 * Paging with lin 0x400000 mapped to a frame beyond guest RAM and (optionally) lin 0x800000
 * through a page table beyond guest RAM; the guest writes a pattern to both and reads back.
 */
function unbackedGuest(pageTableBeyond: boolean): Uint8Array {
  const a = new Assembler({ bits: 32, origin: 0x100000 });
  const bad = a.label('bad');
  a.cli();
  a.mov(edi, 0x200000); a.mov(ecx, 3 * 1024); a.xor(eax, eax); a.stosd('rep'); // PD, PT0, PT1
  a.mov(dword(0x200000), 0x201000 | 3);
  a.mov(dword(0x200004), 0x202000 | 3);
  if (pageTableBeyond) a.mov(dword(0x200008), BEYOND | 3);
  a.mov(edi, 0x201000); a.mov(eax, 3); a.mov(ecx, 1024);
  const fill = a.here();
  a.stosd(); a.add(eax, 0x1000); a.loop(fill);
  a.mov(dword(0x202000), BEYOND | 3); // lin 0x400000 → a frame beyond RAM, writable
  a.mov(eax, 0x200000); a.mov(cr3, eax);
  a.mov(eax, cr0); a.or(eax, 0x80000000); a.mov(cr0, eax);
  a.mov(dword(0x400000), PATTERN);
  a.mov(ebx, dword(0x400000));
  a.cmp(ebx, -1); a.jne(bad);
  if (pageTableBeyond) {
    a.mov(esi, dword(0x800010));
    a.cmp(esi, -1); a.jne(bad);
    a.mov(dword(0x800010), PATTERN);
    a.mov(esi, dword(0x800010));
    a.cmp(esi, -1); a.jne(bad);
  }
  finish(a, bad);
  return flat(a);
}

describe('a guest that maps a frame beyond its RAM', () => {
  for (const mode of MODES) {
    it(`${mode}: reads all ones, its writes are dropped, monitor memory untouched, counted`, () => {
      const r = run(mode, unbackedGuest(true));
      expect(r.o.exit, JSON.stringify(r.o.exit)).toEqual(PASSED);
      noPatternAboveGuest(r.m);
      if (mode !== 'native') expect(r.stats['attack.unbacked-memory']).toBeGreaterThan(0);
    });
  }
});

describe('port I/O with no device behind it', () => {
  const guest = (): Uint8Array => {
    const a = new Assembler({ bits: 32, origin: 0x100000 });
    const bad = a.label('bad');
    a.mov(edx, FREE_PORT);
    a.mov(eax, PATTERN); a.out(dx, eax); // dropped
    a.xor(eax, eax); a.in(eax, dx);
    a.cmp(eax, -1); a.jne(bad);
    a.mov(edx, FREE_PORT + 4); a.xor(eax, eax); a.in(al, dx);
    a.cmp(eax, 0xff); a.jne(bad);
    finish(a, bad);
    return flat(a);
  };
  for (const mode of MODES) {
    it(`${mode}: reads all ones, writes dropped, counted`, () => {
      const r = run(mode, guest());
      expect(r.o.exit, JSON.stringify(r.o.exit)).toEqual(PASSED);
      // Three accesses to unassigned ports; the exit port is a device.
      if (mode !== 'native') expect(r.stats['attack.unassigned-port']).toBe(3);
    });
  }
});

describe('bus-master DMA outside the guest RAM', () => {
  // READ DMA of one sector with the PRD table, then the data region, beyond the guest's RAM.
  const guest = (prdBeyond: boolean): Uint8Array => {
    const a = new Assembler({ bits: 32, origin: 0x100000 });
    const bad = a.label('bad');
    a.cli();
    // PRD at 0x300000 (in RAM) naming a region beyond RAM, or the PRD itself beyond RAM.
    a.mov(dword(0x300000), BEYOND); a.mov(dword(0x300004), 0x80000000 | 512);
    a.mov(edx, 0xc044); a.mov(eax, prdBeyond ? BEYOND : 0x300000); a.out(dx, eax);
    a.mov(edx, 0x1f6); a.mov(al, 0xe0); a.out(dx, al);
    a.mov(edx, 0x1f2); a.mov(al, 1); a.out(dx, al);
    for (const p of [0x1f3, 0x1f4, 0x1f5]) { a.mov(edx, p); a.mov(al, 0); a.out(dx, al); }
    a.mov(edx, 0x1f7); a.mov(al, 0xc8); a.out(dx, al); // READ DMA
    a.mov(edx, 0xc040); a.mov(al, 0x09); a.out(dx, al); // start, toward memory
    a.mov(edx, 0xc042);
    const poll = a.here();
    a.in(al, dx); a.test(al, 4); a.jz(poll);
    a.and(eax, 0x02); a.cmp(eax, 0x02); a.jne(bad); // BMIDE status: ERROR
    finish(a, bad);
    return flat(a);
  };
  for (const mode of MODES) {
    for (const prdBeyond of [false, true]) {
      it(`${mode}: ${prdBeyond ? 'PRD table' : 'data region'} beyond RAM: BMIDE error, nothing written above RAM, counted`, () => {
        const r = run(mode, guest(prdBeyond), true);
        expect(r.o.exit, JSON.stringify(r.o.exit)).toEqual(PASSED);
        expect(r.m.disk!.counters.dmaOutsideRam).toBe(1);
        expect(r.m.disk!.counters.dmaErrors).toBe(1);
        if (mode !== 'native') expect(r.stats['attack.dma-outside-ram']).toBe(1);
      });
    }
  }

  it('e1000: a transmit buffer or ring beyond guest RAM is refused (no monitor byte sent), counted', () => {
    const m = new Machine({ profile: PROFILE, memoryMiB: GUEST_MIB, monitorMiB: 8, nic: { seed: 1 } });
    m.mem.u8.fill(0x77, m.mem.guestSize); // "monitor memory": must never reach the wire
    const reg = (off: number, v: number): void => { m.io.out32(E1000_IO_BASE, off); m.io.out32(E1000_IO_BASE + 4, v); };
    const RING = 0x10000;
    // One legacy descriptor: buffer just past guest RAM, 64 bytes, EOP | RS.
    m.mem.write32(RING, m.mem.guestSize + 0x100); m.mem.write32(RING + 4, 0);
    m.mem.write32(RING + 8, 64 | ((E1000_TXD_CMD.EOP | E1000_TXD_CMD.RS) << 24)); m.mem.write32(RING + 12, 0);
    reg(E1000_REG.TDBAL, RING); reg(E1000_REG.TDLEN, 128); reg(E1000_REG.TDH, 0);
    reg(E1000_REG.TCTL, E1000_TCTL.EN); reg(E1000_REG.TDT, 1);
    const nic = m.nic!;
    expect(nic.counters.dmaOutsideRam).toBe(1);
    expect(nic.counters.txFrames).toBe(0); // the frame is dropped, not sent with open-bus bytes
    expect(m.mem.read8(RING + 12) & 1).toBe(1); // the descriptor completes (DD)
    // The ring itself beyond guest RAM: nothing fetched, the head does not move.
    reg(E1000_REG.TCTL, 0); reg(E1000_REG.TDBAL, m.mem.guestSize); reg(E1000_REG.TDH, 0); reg(E1000_REG.TDT, 0);
    reg(E1000_REG.TCTL, E1000_TCTL.EN); reg(E1000_REG.TDT, 1);
    expect(nic.counters.dmaOutsideRam).toBe(2);
    expect(nic.counters.txFrames).toBe(0);
  });

  it('guestRamDma: never reads or writes at or above guestSize; reports the refusal', () => {
    const mem = new PhysicalMemory(8192, 4096);
    mem.u8.fill(0x77, 8192);
    let refused = 0;
    const dma = guestRamDma(mem, () => refused++);
    expect(dma.write(8192 - 2, Uint8Array.of(1, 2, 3, 4))).toBe(false);
    expect([...mem.u8.subarray(8190, 8196)]).toEqual([1, 2, 0x77, 0x77, 0x77, 0x77]);
    const dst = new Uint8Array(4);
    expect(dma.read(8192 - 1, dst)).toBe(false);
    expect([...dst]).toEqual([2, 0xff, 0xff, 0xff]); // the byte it wrote below guestSize, then open bus
    expect(dma.read(0, dst)).toBe(true);
    expect(refused).toBe(2);
  });
});

describe('hw: interrupt-window exiting', () => {
  // The PIC at vector base 0x20; IRQ1's handler prints 'I'. The guest spins with IF = 0,
  // the test raises IRQ1 there, then the guest opens the window with STI and prints 'E'.
  const guest = (): Uint8Array => {
    const a = new Assembler({ bits: 32, origin: 0x100000 });
    const handler = a.label('handler'), idt = a.label('idt'), idtr = a.label('idtr'), gdt = a.label('gdt'), gdtr = a.label('gdtr');
    a.cli();
    a.mov(esp, 0x90000); // the flat entry state leaves no stack
    a.lgdt(fword(gdtr));
    for (const [p, v] of [[0x20, 0x11], [0x21, 0x20], [0x21, 4], [0x21, 1], [0x21, 0xfd]] as const) { a.mov(al, v); a.out(p, al); }
    // IDT gate 0x21: a 32-bit interrupt gate to `handler` in selector 0x08.
    a.mov(eax, handler); a.and(eax, 0xffff); a.or(eax, 0x00080000); a.mov(dword(idt.plus(0x21 * 8)), eax);
    a.mov(eax, handler); a.and(eax, 0xffff0000); a.or(eax, 0x8e00); a.mov(dword(idt.plus(0x21 * 8 + 4)), eax);
    a.lidt(fword(idtr));
    a.mov(ecx, 2000);
    const spin = a.here();
    a.dec(ecx); a.jnz(spin); // the test raises IRQ1 during this loop
    a.sti(); a.nop(); a.nop();
    a.mov(al, 0x45); a.out(0xe9, al); // 'E'
    a.mov(al, 0); a.out(0xf4, al);
    a.bind(handler);
    a.push(eax);
    a.mov(al, 0x49); a.out(0xe9, al); // 'I'
    a.mov(al, 0x20); a.out(0x20, al); // EOI
    a.pop(eax);
    a.iret();
    a.align(8);
    a.bind(gdt); a.dq(0n, 0x00cf9a000000ffffn, 0x00cf92000000ffffn);
    a.bind(gdtr); a.dw(3 * 8 - 1); a.dd(gdt);
    a.align(8);
    a.bind(idtr); a.dw(256 * 8 - 1); a.dd(idt);
    a.align(8);
    a.bind(idt); a.zero(256 * 8);
    return flat(a);
  };
  const costs = toVmmCosts(PROFILE);

  function runIw(mode: 'native' | 'hw', raiseAfter: number) {
    const m = new Machine({ profile: PROFILE, memoryMiB: GUEST_MIB, monitorMiB: mode === 'hw' ? monitorMemoryMiB('hw', GUEST_MIB) : 0 });
    m.loadFlat(guest(), 'iw.bin', { loadAddress: 0x100000 });
    const hw = mode === 'hw' ? new HwMonitor(costs, { paging: 'nested', vpid: true }) : null;
    hw?.attach(m);
    m.run({ maxInstructions: raiseAfter });
    m.pic.setIrq(1, true);
    const o = m.run({ maxInstructions: 100_000 });
    return { m, o, hw };
  }

  it('an interrupt raised while IF = 0: external-interrupt exit at once, interrupt-window exit at STI, injected then', () => {
    const n = runIw('native', 1000);
    const h = runIw('hw', 1000);
    expect(n.m.console.text(), JSON.stringify(n.o.exit)).toBe('IE');
    expect(h.m.console.text()).toBe('IE');
    expect(h.o.exit).toEqual(n.o.exit);
    const st = h.hw!.stats();
    expect(st['exit:external-interrupt']).toBe(1);
    expect(st['exit:interrupt-window']).toBe(1);
    expect(h.o.accounting.categories['exit:interrupt-window']).toEqual({
      cycles: costs.vmExit + costs.vmEntry + costs.handlerByReason[ExitReason.InterruptWindow]!, count: 1,
    });
    expect(h.hw!.vmcs.proc.interruptWindowExiting).toBe(false);
  });

  it('an interrupt raised while IF = 1 needs no window', () => {
    // 23 set-up instructions, 2000 × 2 in the spin loop, STI and one NOP: IF is 1, no blocking.
    const h = runIw('hw', 23 + 4000 + 2);
    expect(h.m.console.text()).toBe('IE');
    const st = h.hw!.stats();
    expect(st['exit:interrupt-window']).toBeUndefined();
    expect(st['exit:external-interrupt']).toBe(1);
  });
});
