import { afterEach, describe, expect, it, vi } from 'vitest';
import { Clock } from '../../src/machine/clock.js';
import {
  ATA_CMD, ATA_ER, ATA_SR, AtaController, attachBlockDevice, BM_CMD, BM_STATUS, BMIDE_BASE, SECTOR_SIZE,
  type BlockDeviceOptions,
} from '../../src/machine/devices/block-device.js';
import { InputMismatchError, type DeviceInput } from '../../src/machine/devices/device-io.js';
import { DualPic } from '../../src/machine/devices/pic.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { advanceTo, fakeCpu } from './fake-cpu.js';

const IRQ14_VECTOR = 0x28 + 6;
const BM = BMIDE_BASE;

/** A machine's worth of parts: port bus, 1 MiB of RAM, a PIC pair set up as a PC BIOS does, a clock. */
function setup(opts: Partial<BlockDeviceOptions> = {}) {
  const cpu = fakeCpu();
  const clock = new Clock(cpu, 1_000_000_000);
  const io = new PortBus();
  const mem = new PhysicalMemory(1 << 20);
  let intr = false;
  const pic = new DualPic(io, (l) => { intr = l; });
  io.out8(0x20, 0x11); io.out8(0x21, 0x20); io.out8(0x21, 0x04); io.out8(0x21, 0x01);
  io.out8(0xa0, 0x11); io.out8(0xa1, 0x28); io.out8(0xa1, 0x02); io.out8(0xa1, 0x01);
  io.out8(0x21, 0x00); io.out8(0xa1, 0x00);
  const ata = attachBlockDevice({ io, mem, clock, pic }, {
    sectors: 4096, seed: 1, latency: { baseCycles: 10_000, perSectorCycles: 1_000, jitterCycles: 0 }, ...opts,
  });
  return {
    cpu, clock, io, mem, pic, ata,
    intr: () => intr,
    /** Acknowledges the pending interrupt (as the CPU would) and sends EOIs; returns the vector. */
    ack: (): number => { const v = pic.acknowledge(); io.out8(0xa0, 0x20); io.out8(0x20, 0x20); return v; },
  };
}

type Env = ReturnType<typeof setup>;

/** Sector pattern, independent of the device: byte i of sector `lba`. */
const pattern = (lba: number, i: number): number => (lba * 131 + i * 7 + (i >> 8)) & 0xff;

function fillImage(ata: AtaController): void {
  const img = ata.disk.image;
  for (let lba = 0; lba < ata.disk.sectors; lba++) for (let i = 0; i < SECTOR_SIZE; i++) img[lba * SECTOR_SIZE + i] = pattern(lba, i);
}

function selectLba(io: PortBus, lba: number, count: number): void {
  io.out8(0x1f6, 0xe0 | ((lba >>> 24) & 0x0f));
  io.out8(0x1f2, count & 0xff);
  io.out8(0x1f3, lba & 0xff);
  io.out8(0x1f4, (lba >>> 8) & 0xff);
  io.out8(0x1f5, (lba >>> 16) & 0xff);
}

/** Writes a PRD table at `table`: entries [address, byteCount]; EOT on the last. */
function writePrd(mem: PhysicalMemory, table: number, entries: [number, number][]): void {
  entries.forEach(([addr, len], i) => {
    mem.write32(table + 8 * i, addr);
    mem.write16(table + 8 * i + 4, len & 0xffff);
    mem.write16(table + 8 * i + 6, i === entries.length - 1 ? 0x8000 : 0);
  });
}

function dmaRead(env: Env, lba: number, count: number, table: number): void {
  const { io } = env;
  io.out32(BM + 4, table);
  io.out8(BM + 2, BM_STATUS.INTERRUPT | BM_STATUS.ERROR); // clear
  selectLba(io, lba, count);
  io.out8(0x1f7, ATA_CMD.READ_DMA);
  io.out8(BM, BM_CMD.START | BM_CMD.WRITE_TO_MEMORY);
}

afterEach(() => { vi.restoreAllMocks(); });

describe('ATA disk: identification and reset', () => {
  it('answers IDENTIFY DEVICE with the geometry, capacity, model and a valid checksum, by PIO', () => {
    const env = setup();
    const { io } = env;
    io.out8(0x1f6, 0xa0);
    io.out8(0x1f7, ATA_CMD.IDENTIFY);
    expect(env.intr()).toBe(true);
    expect(env.ack()).toBe(IRQ14_VECTOR);
    expect(io.in8(0x1f7) & (ATA_SR.DRQ | ATA_SR.BSY | ATA_SR.ERR)).toBe(ATA_SR.DRQ);
    const w: number[] = [];
    for (let i = 0; i < 256; i++) w.push(io.in16(0x1f0));
    expect(io.in8(0x1f7) & ATA_SR.DRQ).toBe(0);
    expect(w[60]! | (w[61]! << 16)).toBe(4096);
    expect(w[49]! & 0x0300).toBe(0x0300); // LBA and DMA
    let model = '';
    for (let i = 27; i < 47; i++) model += String.fromCharCode(w[i]! >> 8, w[i]! & 0xff);
    expect(model.trim()).toBe('VIRTLAB ATA DISK');
    let sum = 0;
    for (const x of w) sum += (x & 0xff) + (x >> 8);
    expect(w[255]! & 0xff).toBe(0xa5);
    expect(sum & 0xff).toBe(0);
  });

  it('reads 0 from every register with the absent slave selected, and ignores its commands', () => {
    const { io, intr } = setup();
    io.out8(0x1f6, 0xb0);
    expect(io.in8(0x1f7)).toBe(0);
    expect(io.in8(0x3f6)).toBe(0);
    io.out8(0x1f7, ATA_CMD.IDENTIFY);
    expect(intr()).toBe(false);
    io.out8(0x1f6, 0xa0);
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
  });

  it('software reset: BSY while SRST is held, then the ATA signature, and an in-flight command is dropped', () => {
    const env = setup();
    const { io, cpu } = env;
    fillImage(env.ata);
    selectLba(io, 5, 1);
    io.out8(0x1f7, ATA_CMD.READ_SECTORS);
    expect(io.in8(0x3f6) & ATA_SR.BSY).toBe(ATA_SR.BSY);
    io.out8(0x3f6, 0x04);
    expect(io.in8(0x3f6)).toBe(ATA_SR.BSY);
    io.out8(0x3f6, 0x00);
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
    expect([io.in8(0x1f1), io.in8(0x1f2), io.in8(0x1f3), io.in8(0x1f4), io.in8(0x1f5)]).toEqual([0x01, 1, 1, 0, 0]);
    advanceTo(cpu, 1_000_000);
    expect(env.intr()).toBe(false);
    expect(env.ata.disk.counters.cancelled).toBe(1);
  });
});

describe('ATA disk: bus-master DMA', () => {
  it('scatters a multi-sector read over the PRD regions and interrupts at the modelled cycle', () => {
    const env = setup();
    const { io, mem, cpu } = env;
    fillImage(env.ata);
    writePrd(mem, 0x1000, [[0x10000, 512], [0x20000, 1024], [0x30000, 512]]);
    cpu.cycles = 5000;
    dmaRead(env, 10, 4, 0x1000);
    const due = 5000 + 10_000 + 4 * 1_000;
    expect(io.in8(0x3f6) & ATA_SR.BSY).toBe(ATA_SR.BSY);
    expect(io.in8(BM + 2) & BM_STATUS.ACTIVE).toBe(BM_STATUS.ACTIVE);
    advanceTo(cpu, due - 1);
    expect(env.intr()).toBe(false);
    expect(mem.read8(0x10000)).toBe(0); // nothing moved yet
    advanceTo(cpu, due);
    expect(env.intr()).toBe(true);
    expect(env.ack()).toBe(IRQ14_VECTOR);
    const at = (addr: number, lba: number, n: number): void => {
      for (let i = 0; i < n; i++) expect(mem.read8(addr + i), `byte ${i} of the buffer at ${addr.toString(16)}`).toBe(pattern(lba + (i >> 9), i & 511));
    };
    at(0x10000, 10, 512);
    at(0x20000, 11, 1024);
    at(0x30000, 13, 512);
    expect(mem.read8(0x30000 + 512)).toBe(0); // not past the region
    // The PRD table was exactly consumed: interrupt set, engine inactive; no error.
    expect(io.in8(BM + 2) & (BM_STATUS.ACTIVE | BM_STATUS.INTERRUPT | BM_STATUS.ERROR)).toBe(BM_STATUS.INTERRUPT);
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
    expect(env.intr()).toBe(false); // the status read acknowledged INTRQ
    // The address registers end at the last sector transferred.
    expect(io.in8(0x1f3)).toBe(13);
    expect(env.ata.counters.dmaBytes).toBe(2048);
    expect(env.ata.counters.interrupts).toBe(1);
    io.out8(BM, 0);
    io.out8(BM + 2, BM_STATUS.INTERRUPT);
    expect(io.in8(BM + 2) & BM_STATUS.INTERRUPT).toBe(0);
  });

  it('keeps ACTIVE set when the PRD table is larger than the transfer (SFF-8038i)', () => {
    const env = setup();
    fillImage(env.ata);
    writePrd(env.mem, 0x1000, [[0x10000, 4096]]);
    dmaRead(env, 0, 2, 0x1000);
    advanceTo(env.cpu, 100_000);
    expect(env.io.in8(BM + 2) & (BM_STATUS.ACTIVE | BM_STATUS.INTERRUPT)).toBe(BM_STATUS.ACTIVE | BM_STATUS.INTERRUPT);
    expect(env.mem.read8(0x10000 + 512 + 3)).toBe(pattern(1, 3));
  });

  it('starts the transfer only once both the command and the engine start bit are given', () => {
    const env = setup();
    const { io, cpu } = env;
    fillImage(env.ata);
    writePrd(env.mem, 0x1000, [[0x10000, 512]]);
    io.out32(BM + 4, 0x1000);
    io.out8(BM, BM_CMD.WRITE_TO_MEMORY); // direction first, as drivers do
    selectLba(io, 7, 1);
    cpu.cycles = 100;
    io.out8(0x1f7, ATA_CMD.READ_DMA);
    advanceTo(cpu, 50_000);
    expect(env.intr()).toBe(false);
    io.out8(BM, BM_CMD.START | BM_CMD.WRITE_TO_MEMORY);
    advanceTo(cpu, 50_000 + 11_000 - 1);
    expect(env.intr()).toBe(false);
    advanceTo(cpu, 50_000 + 11_000);
    expect(env.intr()).toBe(true);
    expect(env.mem.read8(0x10000 + 100)).toBe(pattern(7, 100));
  });

  it('writes guest memory to the disk, and the data persists for a later read', () => {
    const env = setup();
    const { io, mem, cpu, ata } = env;
    for (let i = 0; i < 1024; i++) mem.write8(0x40000 + i, (i * 13 + 5) & 0xff);
    writePrd(mem, 0x1000, [[0x40000, 1024]]);
    io.out32(BM + 4, 0x1000);
    selectLba(io, 100, 2);
    io.out8(0x1f7, ATA_CMD.WRITE_DMA);
    io.out8(BM, BM_CMD.START); // bus master reads memory
    advanceTo(cpu, 100_000);
    expect(env.ack()).toBe(IRQ14_VECTOR);
    expect(io.in8(0x1f7) & ATA_SR.ERR).toBe(0);
    io.out8(BM, 0);
    for (let i = 0; i < 1024; i++) expect(ata.disk.image[100 * 512 + i]).toBe((i * 13 + 5) & 0xff);
    expect(ata.disk.image[102 * 512]).toBe(0);
    // Read it back elsewhere.
    writePrd(mem, 0x2000, [[0x50000, 1024]]);
    dmaRead(env, 100, 2, 0x2000);
    advanceTo(cpu, 200_000);
    for (let i = 0; i < 1024; i++) expect(mem.read8(0x50000 + i)).toBe((i * 13 + 5) & 0xff);
  });

  it('draws the completion latency from the seed: same seed, same cycle; other seed, other cycle', () => {
    const completionCycle = (seed: number): number[] => {
      const env = setup({ seed, latency: { baseCycles: 10_000, perSectorCycles: 1_000, jitterCycles: 1_000_000 } });
      writePrd(env.mem, 0x1000, [[0x10000, 512]]);
      const cycles: number[] = [];
      for (let k = 0; k < 3; k++) {
        dmaRead(env, k, 1, 0x1000);
        const start = env.cpu.cycles;
        while (!env.intr()) advanceTo(env.cpu, env.cpu.cycles + 1000);
        // The IRQ came at the first step at or past the due cycle.
        cycles.push(env.cpu.cycles - start);
        env.ack();
        env.io.in8(0x1f7);
        env.io.out8(BM, 0);
      }
      return cycles;
    };
    const a = completionCycle(42);
    expect(completionCycle(42)).toEqual(a);
    expect(completionCycle(43)).not.toEqual(a);
    for (const c of a) { expect(c).toBeGreaterThanOrEqual(11_000); expect(c).toBeLessThanOrEqual(1_012_000); }
  });
});

describe('ATA disk: PIO', () => {
  it('writes sectors through the data port (interrupt per block, completion after the latency) and reads them back', () => {
    const env = setup();
    const { io, cpu, ata } = env;
    selectLba(io, 33, 2);
    io.out8(0x1f7, ATA_CMD.WRITE_SECTORS);
    expect(io.in8(0x3f6) & ATA_SR.DRQ).toBe(ATA_SR.DRQ);
    expect(env.intr()).toBe(false); // no interrupt before the first block
    for (let i = 0; i < 256; i++) io.out16(0x1f0, 0x0101 * (i & 0x7f) + 0x8000);
    expect(env.intr()).toBe(true); // second block requested
    env.ack();
    expect(io.in8(0x1f7) & ATA_SR.DRQ).toBe(ATA_SR.DRQ);
    for (let i = 0; i < 128; i++) io.out32(0x1f0, 0x11223344 + i);
    expect(io.in8(0x1f7) & ATA_SR.BSY).toBe(ATA_SR.BSY);
    advanceTo(cpu, cpu.cycles + 12_000);
    expect(env.intr()).toBe(true);
    env.ack();
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
    const img = ata.disk.image;
    expect(img[33 * 512 + 2 * 5]).toBe(5);
    expect(img[33 * 512 + 2 * 5 + 1]).toBe(0x85);
    expect(new DataView(img.buffer).getUint32(34 * 512 + 4 * 3, true)).toBe(0x11223347);

    // Read back: first with dword accesses, the second sector with words.
    selectLba(io, 33, 2);
    io.out8(0x1f7, ATA_CMD.READ_SECTORS);
    expect(io.in8(0x3f6) & ATA_SR.BSY).toBe(ATA_SR.BSY);
    advanceTo(cpu, cpu.cycles + 12_000);
    expect(env.intr()).toBe(true);
    env.ack();
    expect(io.in8(0x1f7) & ATA_SR.DRQ).toBe(ATA_SR.DRQ);
    const first: number[] = [];
    for (let i = 0; i < 128; i++) first.push(io.in32(0x1f0) >>> 0);
    expect(first[5]).toBe(((0x0101 * 11 + 0x8000) << 16 | (0x0101 * 10 + 0x8000)) >>> 0);
    expect(env.intr()).toBe(true); // the second block's interrupt
    env.ack();
    const second: number[] = [];
    for (let i = 0; i < 256; i++) second.push(io.in16(0x1f0));
    expect([second[6], second[7]]).toEqual([0x3347, 0x1122]); // dword 3 = 0x11223347, little-endian words
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
    expect(ata.counters.pioBytes).toBe(4 * 512);
  });

  it('addresses by CHS when the LBA bit is clear', () => {
    const env = setup();
    const { io, cpu, ata } = env;
    fillImage(ata);
    const g = ata.geometry;
    expect(g).toEqual({ cylinders: 4, heads: 16, sectorsPerTrack: 63 });
    // Cylinder 1, head 2, sector 3 → LBA (1 × 16 + 2) × 63 + 2 = 1136.
    io.out8(0x1f6, 0xa0 | 2);
    io.out8(0x1f2, 1);
    io.out8(0x1f3, 3);
    io.out8(0x1f4, 1);
    io.out8(0x1f5, 0);
    io.out8(0x1f7, ATA_CMD.READ_SECTORS);
    advanceTo(cpu, cpu.cycles + 11_000);
    expect(io.in8(0x1f7) & ATA_SR.DRQ).toBe(ATA_SR.DRQ);
    const w0 = io.in16(0x1f0);
    expect(w0).toBe(pattern(1136, 0) | (pattern(1136, 1) << 8));
  });

  it('honours nIEN: the interrupt line stays low while the device control register masks it', () => {
    const env = setup();
    const { io } = env;
    io.out8(0x3f6, 0x02);
    io.out8(0x1f7, ATA_CMD.FLUSH_CACHE);
    expect(env.intr()).toBe(false);
    io.out8(0x3f6, 0x00); // unmasking shows the pending interrupt
    expect(env.intr()).toBe(true);
  });
});

describe('ATA disk: errors a driver checks', () => {
  it('aborts an unknown command with ERR and ABRT, and interrupts', () => {
    const env = setup();
    env.io.out8(0x1f7, 0x50); // FORMAT TRACK: not implemented
    expect(env.ack()).toBe(IRQ14_VECTOR);
    expect(env.io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.ERR);
    expect(env.io.in8(0x1f1)).toBe(ATA_ER.ABRT);
    expect(env.ata.counters.errors).toBe(1);
  });

  it('rejects an address past the end with IDNF, and CHS sector 0 too', () => {
    const env = setup();
    const { io } = env;
    selectLba(io, 4095, 2);
    io.out8(0x1f7, ATA_CMD.READ_DMA);
    expect(io.in8(0x1f7) & ATA_SR.ERR).toBe(ATA_SR.ERR);
    expect(io.in8(0x1f1)).toBe(ATA_ER.IDNF);
    io.out8(0x1f6, 0xa0);
    io.out8(0x1f2, 1); io.out8(0x1f3, 0); io.out8(0x1f4, 0); io.out8(0x1f5, 0);
    io.out8(0x1f7, ATA_CMD.READ_SECTORS);
    expect(io.in8(0x1f1)).toBe(ATA_ER.IDNF);
    selectLba(io, 4094, 2); // exactly the last two sectors: fine
    io.out8(0x1f7, ATA_CMD.READ_VERIFY);
    advanceTo(env.cpu, 100_000);
    expect(io.in8(0x1f7)).toBe(ATA_SR.DRDY | ATA_SR.DSC);
  });

  it('fails a DMA whose PRD table is shorter than the transfer: BMISTA.ERROR and ATA ERR', () => {
    const env = setup();
    fillImage(env.ata);
    writePrd(env.mem, 0x1000, [[0x10000, 512]]);
    dmaRead(env, 0, 2, 0x1000);
    advanceTo(env.cpu, 100_000);
    expect(env.intr()).toBe(true);
    expect(env.io.in8(BM + 2) & (BM_STATUS.ERROR | BM_STATUS.INTERRUPT | BM_STATUS.ACTIVE)).toBe(BM_STATUS.ERROR | BM_STATUS.INTERRUPT);
    expect(env.io.in8(0x1f7) & ATA_SR.ERR).toBe(ATA_SR.ERR);
    expect(env.ata.counters.dmaErrors).toBe(1);
  });

  it('fails a DMA into memory that does not exist (master abort)', () => {
    const env = setup();
    writePrd(env.mem, 0x1000, [[0x200000, 512]]); // past the 1 MiB of RAM
    dmaRead(env, 0, 1, 0x1000);
    advanceTo(env.cpu, 100_000);
    expect(env.io.in8(BM + 2) & BM_STATUS.ERROR).toBe(BM_STATUS.ERROR);
    expect(env.io.in8(0x1f7) & ATA_SR.ERR).toBe(ATA_SR.ERR);
  });

  it('refuses a DMA whose engine direction contradicts the command', () => {
    const env = setup();
    writePrd(env.mem, 0x1000, [[0x10000, 512]]);
    env.io.out32(BM + 4, 0x1000);
    selectLba(env.io, 0, 1);
    env.io.out8(0x1f7, ATA_CMD.READ_DMA);
    env.io.out8(BM, BM_CMD.START); // engine set to read memory, but the command reads the disk
    advanceTo(env.cpu, 100_000);
    expect(env.io.in8(0x1f7) & ATA_SR.ERR).toBe(ATA_SR.ERR);
    expect(env.io.in8(0x1f1)).toBe(ATA_ER.ABRT);
    expect(env.mem.read8(0x10000)).toBe(0);
  });

  it('ignores a command written while the device is busy', () => {
    const env = setup();
    selectLba(env.io, 0, 1);
    env.io.out8(0x1f7, ATA_CMD.READ_SECTORS);
    env.io.out8(0x1f7, ATA_CMD.IDENTIFY);
    expect(env.ata.counters.commands).toBe(1);
  });
});

describe('ATA disk: the input seam', () => {
  /** A little guest-driver script: three DMA reads and a DMA write at fixed cycles. */
  function script(env: Env, runUntil: (cycle: number) => void): void {
    const { io, mem } = env;
    writePrd(mem, 0x1000, [[0x10000, 1024]]);
    for (let k = 0; k < 3; k++) {
      env.cpu.cycles = Math.max(env.cpu.cycles, 1_000_000 * k);
      dmaRead(env, 3 * k, 2, 0x1000);
      runUntil(1_000_000 * k + 900_000);
      io.in8(0x1f7);
      io.out8(BM, 0);
      for (let i = 0; i < 1024; i += 97) mem.write8(0x60000 + k * 1024 + i, mem.read8(0x10000 + i));
    }
  }

  it('passes every completion through applyInput; an external source replays them and diverges loudly', () => {
    const rec = setup({ seed: 9, latency: { baseCycles: 10_000, perSectorCycles: 1_000, jitterCycles: 500_000 } });
    fillImage(rec.ata);
    const log: { at: number; input: DeviceInput }[] = [];
    rec.ata.disk.onInput = (input) => log.push({ at: rec.cpu.cycles, input });
    script(rec, (c) => advanceTo(rec.cpu, c));
    expect(log.map((e) => e.input.seq)).toEqual([1, 2, 3]);
    expect(log.every((e) => e.input.kind === 'block-complete' && e.input.device === 'disk0')).toBe(true);

    // Replay with another seed: the model is off, the recorded inputs arrive at their points.
    const rep = setup({ seed: 12345, latency: { baseCycles: 1, perSectorCycles: 0, jitterCycles: 0 } });
    fillImage(rep.ata);
    rep.ata.disk.inputSource = 'external';
    let next = 0;
    script(rep, (c) => {
      while (next < log.length && log[next]!.at <= c) { rep.cpu.cycles = log[next]!.at; rep.ata.disk.applyInput(log[next]!.input); next++; }
      advanceTo(rep.cpu, c);
    });
    expect(next).toBe(3);
    expect(rep.mem.u8.subarray(0x60000, 0x60000 + 3072)).toEqual(rec.mem.u8.subarray(0x60000, 0x60000 + 3072));
    expect(rep.ata.counters).toEqual(rec.ata.counters);
    expect(() => rep.ata.disk.applyInput(log[0]!.input)).toThrow(InputMismatchError);
  });

  it('never consults the wall clock or Math.random', () => {
    const boom = (): never => { throw new Error('nondeterministic source used'); };
    vi.spyOn(Math, 'random').mockImplementation(boom);
    vi.spyOn(Date, 'now').mockImplementation(boom);
    vi.spyOn(performance, 'now').mockImplementation(boom);
    vi.spyOn(process, 'hrtime').mockImplementation(boom as never);
    const env = setup({ latency: { baseCycles: 100, perSectorCycles: 10, jitterCycles: 1000 } });
    fillImage(env.ata);
    writePrd(env.mem, 0x1000, [[0x10000, 512]]);
    dmaRead(env, 1, 1, 0x1000);
    advanceTo(env.cpu, 10_000);
    expect(env.intr()).toBe(true);
    expect(env.mem.read8(0x10001)).toBe(pattern(1, 1));
  });
});
