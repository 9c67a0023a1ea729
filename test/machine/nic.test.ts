import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Clock } from '../../src/machine/clock.js';
import { InputMismatchError, type DeviceInput } from '../../src/machine/devices/device-io.js';
import {
  attachNic, crc32, DEFAULT_GUEST_MAC, DEFAULT_PEER_MAC, E1000_ICR as ICR, E1000_IO_BASE, E1000_REG as R,
  E1000_RCTL, E1000_TCTL, E1000_TXD_CMD as CMD, type NicOptions,
} from '../../src/machine/devices/nic.js';
import { DualPic } from '../../src/machine/devices/pic.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { advanceTo, fakeCpu } from './fake-cpu.js';

const IRQ11_VECTOR = 0x28 + 3;
const TX_RING = 0x1000, RX_RING = 0x2000;

function setup(opts: Partial<NicOptions> = {}) {
  const cpu = fakeCpu();
  const clock = new Clock(cpu, 1_000_000_000);
  const io = new PortBus();
  const mem = new PhysicalMemory(1 << 20);
  let intr = false;
  const pic = new DualPic(io, (l) => { intr = l; });
  io.out8(0x20, 0x11); io.out8(0x21, 0x20); io.out8(0x21, 0x04); io.out8(0x21, 0x01);
  io.out8(0xa0, 0x11); io.out8(0xa1, 0x28); io.out8(0xa1, 0x02); io.out8(0xa1, 0x01);
  io.out8(0x21, 0x00); io.out8(0xa1, 0x00);
  const nic = attachNic({ io, mem, clock, pic }, { seed: 1, ...opts });
  /** Register access the way a driver does it through the I/O BAR. */
  const wr = (off: number, v: number): void => { io.out32(E1000_IO_BASE, off); io.out32(E1000_IO_BASE + 4, v); };
  const rd = (off: number): number => { io.out32(E1000_IO_BASE, off); return io.in32(E1000_IO_BASE + 4) >>> 0; };
  return {
    cpu, clock, io, mem, pic, nic, wr, rd,
    intr: () => intr,
    ack: (): number => { const v = pic.acknowledge(); io.out8(0xa0, 0x20); io.out8(0x20, 0x20); return v; },
  };
}
type Env = ReturnType<typeof setup>;

/** Sets up a TX ring of `n` descriptors at TX_RING, enabled, with head/tail at `start`. */
function initTx(env: Env, n: number, start = 0): void {
  env.wr(R.TDBAL, TX_RING); env.wr(R.TDBAH, 0); env.wr(R.TDLEN, n * 16);
  env.wr(R.TDH, start); env.wr(R.TDT, start);
  env.wr(R.TCTL, E1000_TCTL.EN | E1000_TCTL.PSP);
}

function txDesc(mem: PhysicalMemory, index: number, buf: number, len: number, cmd: number): void {
  const a = TX_RING + index * 16;
  mem.write32(a, buf); mem.write32(a + 4, 0);
  mem.write16(a + 8, len); mem.write8(a + 10, 0); mem.write8(a + 11, cmd);
  mem.write8(a + 12, 0); mem.write8(a + 13, 0); mem.write16(a + 14, 0);
}

/** Sets up an RX ring of `n` descriptors with buffers at 0x10000 + i × 0x1000, all given to the NIC. */
function initRx(env: Env, n: number, rctl: number, head = 0): void {
  for (let i = 0; i < n; i++) {
    env.mem.write32(RX_RING + i * 16, 0x10000 + i * 0x1000);
    env.mem.write32(RX_RING + i * 16 + 4, 0);
    env.mem.write32(RX_RING + i * 16 + 8, 0);
    env.mem.write32(RX_RING + i * 16 + 12, 0);
  }
  env.wr(R.RDBAL, RX_RING); env.wr(R.RDBAH, 0); env.wr(R.RDLEN, n * 16);
  env.wr(R.RDH, head); env.wr(R.RDT, (head + n - 1) % n); // one slot kept back, as drivers do
  env.wr(R.RCTL, E1000_RCTL.EN | E1000_RCTL.BAM | rctl);
}

function frame(dst: readonly number[], size: number, salt: number): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(DEFAULT_PEER_MAC, 6);
  f[12] = 0x08; f[13] = 0x00;
  for (let i = 14; i < size; i++) f[i] = (i * 31 + salt) & 0xff;
  return f;
}

afterEach(() => { vi.restoreAllMocks(); });

describe('e1000: identity through the I/O window', () => {
  it('reads the MAC from the EEPROM through EERD, with a checksum of 0xBABA, and has RAL0/RAH0 loaded', () => {
    const env = setup();
    const words: number[] = [];
    for (let a = 0; a < 64; a++) {
      env.wr(R.EERD, (a << 8) | 1);
      const v = env.rd(R.EERD);
      expect(v & 0x10).toBe(0x10); // DONE
      expect((v >>> 8) & 0xff).toBe(a);
      words.push(v >>> 16);
    }
    const mac = [words[0]! & 0xff, words[0]! >> 8, words[1]! & 0xff, words[1]! >> 8, words[2]! & 0xff, words[2]! >> 8];
    expect(mac).toEqual([...DEFAULT_GUEST_MAC]);
    expect(words.reduce((s, w) => s + w, 0) & 0xffff).toBe(0xbaba);
    expect(env.rd(R.RAL0)).toBe(0x12005452);
    expect(env.rd(R.RAH0)).toBe(0x80005634);
    expect(env.rd(R.STATUS) & 0x02).toBe(0x02); // link up
    expect(env.nic.counters.portAccesses).toBe(64 * 4 + 3 * 2); // two port accesses per register access
  });

  it('CTRL.RST resets the registers and clears itself', () => {
    const env = setup();
    env.wr(R.IMS, 0xff);
    env.wr(R.TDLEN, 256);
    env.wr(R.CTRL, 1 << 26);
    expect(env.rd(R.CTRL)).toBe(0);
    expect(env.rd(R.IMS)).toBe(0);
    expect(env.rd(R.TDLEN)).toBe(0);
  });

  it('raises IRQ 11 for unmasked causes only, clears ICR on read (line drops), and ICR writes clear bits', () => {
    const env = setup();
    env.wr(R.ICS, ICR.LSC);
    expect(env.intr()).toBe(false); // masked
    env.wr(R.IMS, ICR.LSC);
    expect(env.intr()).toBe(true);
    expect(env.ack()).toBe(IRQ11_VECTOR);
    expect(env.rd(R.ICR)).toBe(ICR.LSC);
    expect(env.rd(R.ICR)).toBe(0);
    env.wr(R.ICS, ICR.LSC | ICR.RXO);
    env.wr(R.ICR, ICR.LSC);
    expect(env.rd(R.ICR)).toBe(ICR.RXO);
    env.wr(R.IMC, ICR.LSC);
    env.wr(R.ICS, ICR.LSC);
    expect(env.intr()).toBe(false);
  });
});

describe('e1000: transmit', () => {
  it('gathers frames from descriptors, writes back DD where RS is set, and interrupts', () => {
    const env = setup();
    const { mem, nic } = env;
    initTx(env, 8);
    env.wr(R.IMS, ICR.TXDW);
    const a = frame(DEFAULT_PEER_MAC, 100, 1), b = frame(DEFAULT_PEER_MAC, 40, 2);
    for (let i = 0; i < 100; i++) mem.write8(0x20000 + i, a[i]!);
    for (let i = 0; i < 40; i++) mem.write8(0x30000 + i, b[i]!);
    txDesc(mem, 0, 0x20000, 30, 0);
    txDesc(mem, 1, 0x20000 + 30, 70, CMD.EOP | CMD.IFCS | CMD.RS);
    txDesc(mem, 2, 0x30000, 40, CMD.EOP | CMD.IFCS);
    env.wr(R.TDT, 3);
    expect(nic.link.transmittedFrames.length).toBe(2);
    expect(nic.link.transmittedFrames[0]).toEqual(a);
    const padded = new Uint8Array(60);
    padded.set(b);
    expect(nic.link.transmittedFrames[1]).toEqual(padded); // TCTL.PSP pads to 60
    expect(mem.read8(TX_RING + 0 * 16 + 12) & 1).toBe(0);
    expect(mem.read8(TX_RING + 1 * 16 + 12) & 1).toBe(1);
    expect(mem.read8(TX_RING + 2 * 16 + 12) & 1).toBe(0);
    expect(env.rd(R.TDH)).toBe(3);
    expect(env.intr()).toBe(true);
    expect(env.ack()).toBe(IRQ11_VECTOR);
    expect(env.rd(R.ICR)).toBe(ICR.TXDW | ICR.TXQE);
    expect(env.rd(R.GPTC)).toBe(2);
    expect(env.rd(R.GPTC)).toBe(0); // statistics clear on read
    expect(nic.counters.txBytes).toBe(160);
  });

  it('wraps around the end of the ring', () => {
    const env = setup();
    const { mem, nic } = env;
    initTx(env, 8, 6);
    for (let k = 0; k < 4; k++) {
      const f = frame(DEFAULT_PEER_MAC, 64, 10 + k);
      for (let i = 0; i < 64; i++) mem.write8(0x20000 + k * 0x100 + i, f[i]!);
      txDesc(mem, (6 + k) % 8, 0x20000 + k * 0x100, 64, CMD.EOP | CMD.RS);
    }
    env.wr(R.TDT, 2);
    expect(env.rd(R.TDH)).toBe(2);
    expect(nic.link.transmittedFrames.map((f) => f[20])).toEqual([0, 1, 2, 3].map((k) => (20 * 31 + 10 + k) & 0xff));
    for (const i of [6, 7, 0, 1]) expect(mem.read8(TX_RING + i * 16 + 12) & 1).toBe(1);
  });

  it('does nothing while TCTL.EN is clear, and hashes what it sends', () => {
    const env = setup();
    env.wr(R.TDBAL, TX_RING); env.wr(R.TDLEN, 128);
    txDesc(env.mem, 0, 0x20000, 64, CMD.EOP);
    env.wr(R.TDT, 1);
    expect(env.nic.link.transmittedFrames.length).toBe(0);
    const empty = env.nic.link.transmittedSha256();
    env.wr(R.TCTL, E1000_TCTL.EN);
    env.wr(R.TDT, 1); // rewriting the tail starts the transfer now
    expect(env.nic.link.transmittedFrames.length).toBe(1);
    expect(env.nic.link.transmittedSha256()).not.toBe(empty);
  });
});

describe('e1000: receive', () => {
  it('DMAs arriving frames into the ring with the FCS, writes back length and DD|EOP, and interrupts at the arrival cycle', () => {
    const f1 = frame(DEFAULT_GUEST_MAC, 200, 1), f2 = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 64, 2);
    const env = setup({ frames: [{ atCycle: 5000, data: f2 }, { atCycle: 3000, data: f1 }] });
    const { mem, cpu } = env;
    initRx(env, 8, 0);
    env.wr(R.IMS, ICR.RXT0);
    advanceTo(cpu, 2999);
    expect(env.intr()).toBe(false);
    advanceTo(cpu, 3000);
    expect(env.intr()).toBe(true);
    expect(env.ack()).toBe(IRQ11_VECTOR);
    expect(env.rd(R.ICR) & ICR.RXT0).toBe(ICR.RXT0);
    advanceTo(cpu, 5000);
    expect(env.rd(R.RDH)).toBe(2);
    const check = (i: number, f: Uint8Array): void => {
      const d = RX_RING + i * 16;
      expect(mem.read16(d + 8)).toBe(f.length + 4);
      expect(mem.read8(d + 12)).toBe(0x03);
      expect(mem.u8.subarray(0x10000 + i * 0x1000, 0x10000 + i * 0x1000 + f.length)).toEqual(f);
      expect(mem.read32(0x10000 + i * 0x1000 + f.length) >>> 0).toBe(zlibCrc32(f));
    };
    check(0, f1);
    check(1, f2);
    expect(env.rd(R.GPRC)).toBe(2);
    expect(env.rd(R.BPRC)).toBe(1);
    expect(env.rd(R.GORCL)).toBe(204 + 68);
  });

  it('strips the FCS with SECRC, spreads a long frame over small buffers, and wraps the ring', () => {
    const big = frame(DEFAULT_GUEST_MAC, 600, 3);
    const env = setup({ frames: [{ atCycle: 100, data: big }] });
    initRx(env, 8, E1000_RCTL.SECRC | (3 << 16), 6); // 256-byte buffers; head at 6, tail at 5
    advanceTo(env.cpu, 100);
    expect(env.rd(R.RDH)).toBe(1);
    const pieces = [6, 7, 0].map((i) => {
      const d = RX_RING + i * 16;
      return { len: env.mem.read16(d + 8), sta: env.mem.read8(d + 12), bytes: env.mem.u8.slice(0x10000 + i * 0x1000, 0x10000 + i * 0x1000 + env.mem.read16(d + 8)) };
    });
    expect(pieces.map((p) => [p.len, p.sta])).toEqual([[256, 1], [256, 1], [88, 3]]);
    const joined = new Uint8Array(600);
    let o = 0;
    for (const p of pieces) { joined.set(p.bytes, o); o += p.len; }
    expect(joined).toEqual(big);
  });

  it('drops a frame when the ring has too few free descriptors, counting MPC and raising RXO', () => {
    const env = setup({ frames: [1, 2, 3].map((k) => ({ atCycle: 100 * k, data: frame(DEFAULT_GUEST_MAC, 64, k) })) });
    initRx(env, 8, 0);
    env.wr(R.RDT, 2); // only descriptors 0 and 1 free
    env.wr(R.IMS, ICR.RXO);
    advanceTo(env.cpu, 1000);
    expect(env.rd(R.RDH)).toBe(2);
    expect(env.rd(R.MPC)).toBe(1);
    expect(env.rd(R.ICR) & ICR.RXO).toBe(ICR.RXO);
    expect(env.nic.counters.rxNoBuffer).toBe(1);
    expect(env.mem.read8(0x10000 + 0x1000 + 20)).toBe((20 * 31 + 2) & 0xff); // frame 2 in slot 1
  });

  it('filters by destination: own MAC and broadcast (BAM) pass; others only when promiscuous', () => {
    const other = [0x52, 0x54, 0x00, 0x99, 0x99, 0x99];
    const env = setup({ frames: [{ atCycle: 10, data: frame(other, 64, 1) }, { atCycle: 20, data: frame(DEFAULT_GUEST_MAC, 64, 2) }] });
    initRx(env, 8, 0);
    advanceTo(env.cpu, 15);
    expect(env.rd(R.RDH)).toBe(0);
    env.wr(R.RCTL, env.rd(R.RCTL) | E1000_RCTL.UPE);
    advanceTo(env.cpu, 25);
    expect(env.rd(R.RDH)).toBe(1);
    expect(env.nic.counters.rxDropped).toBe(1);
  });

  it('MAC loopback (RCTL.LBM = 01) turns transmitted frames into received ones', () => {
    const env = setup();
    initRx(env, 8, E1000_RCTL.LBM_MAC | E1000_RCTL.SECRC);
    initTx(env, 8);
    const f = frame(DEFAULT_GUEST_MAC, 80, 7);
    for (let i = 0; i < 80; i++) env.mem.write8(0x20000 + i, f[i]!);
    txDesc(env.mem, 0, 0x20000, 80, CMD.EOP);
    env.wr(R.TDT, 1);
    expect(env.nic.link.transmittedFrames.length).toBe(0);
    expect(env.mem.u8.subarray(0x10000, 0x10000 + 80)).toEqual(f);
  });
});

describe('the link: seeded arrivals, echo peer, inputs', () => {
  /** Runs a Poisson source into a ring the "driver" keeps recycling; returns what arrived and when. */
  function poissonRun(seed: number, mean = 20_000, until = 2_000_000) {
    const env = setup({ seed, arrivals: { meanInterarrivalCycles: mean, minBytes: 60, maxBytes: 300 } });
    initRx(env, 16, E1000_RCTL.SECRC);
    const log: { at: number; input: DeviceInput }[] = [];
    env.nic.link.onInput = (input) => log.push({ at: env.cpu.cycles, input });
    for (let c = 0; c < until; c += 10_000) {
      advanceTo(env.cpu, c);
      env.wr(R.RDT, (env.rd(R.RDH) + 15) % 16); // the driver hands back every used buffer
    }
    return { env, log };
  }

  it('the same seed gives the same arrivals (times, sizes, bytes); another seed gives others', () => {
    const a = poissonRun(7), b = poissonRun(7), c = poissonRun(8);
    expect(a.log.length).toBeGreaterThan(50);
    expect(b.log.map((e) => e.at)).toEqual(a.log.map((e) => e.at));
    expect(b.log.map((e) => Buffer.from(e.input.data!).toString('hex'))).toEqual(a.log.map((e) => Buffer.from(e.input.data!).toString('hex')));
    expect(c.log.map((e) => e.at)).not.toEqual(a.log.map((e) => e.at));
    expect(a.log.map((e) => e.input.seq)).toEqual(a.log.map((_, i) => i + 1));
    // Frames are addressed to the guest, numbered, of the configured sizes.
    for (const [i, e] of a.log.entries()) {
      const d = e.input.data!;
      expect([...d.subarray(0, 6)]).toEqual([...DEFAULT_GUEST_MAC]);
      expect(new DataView(d.buffer, d.byteOffset).getUint32(14)).toBe(i + 1);
      expect(d.length).toBeGreaterThanOrEqual(60);
      expect(d.length).toBeLessThanOrEqual(300);
    }
    expect(a.env.nic.counters.rxFrames).toBe(a.log.length);
  });

  it('arrivals are Poisson: the mean gap is near the configured mean', () => {
    const { log } = poissonRun(3, 5_000, 5_000_000);
    const gaps = log.slice(1).map((e, i) => e.at - log[i]!.at);
    const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    expect(gaps.length).toBeGreaterThan(800);
    expect(mean).toBeGreaterThan(5_000 * 0.9);
    expect(mean).toBeLessThan(5_000 * 1.1);
  });

  it('replays recorded arrivals with the models off and gets the same guest memory; a wrong sequence number is refused', () => {
    const rec = poissonRun(11);
    const rep = setup({ seed: 999, arrivals: { meanInterarrivalCycles: 100, minBytes: 60, maxBytes: 60 } });
    rep.nic.link.setInputSource('external');
    initRx(rep, 16, E1000_RCTL.SECRC);
    let next = 0;
    for (let c = 0; c < 2_000_000; c += 10_000) {
      while (next < rec.log.length && rec.log[next]!.at <= c) {
        advanceTo(rep.cpu, rec.log[next]!.at);
        rep.nic.link.applyInput(rec.log[next]!.input);
        next++;
      }
      advanceTo(rep.cpu, c);
      rep.wr(R.RDT, (rep.rd(R.RDH) + 15) % 16);
    }
    expect(next).toBe(rec.log.length);
    expect(rep.mem.u8.subarray(0x10000, 0x20000 + 16 * 0x1000)).toEqual(rec.env.mem.u8.subarray(0x10000, 0x20000 + 16 * 0x1000));
    expect(rep.nic.counters.rxFrames).toBe(rec.env.nic.counters.rxFrames);
    expect(() => rep.nic.link.applyInput(rec.log[0]!.input)).toThrow(InputMismatchError);
  });

  it('the echo peer answers each transmitted frame after the delay, addressed back to the sender', () => {
    const env = setup({ echo: { delayCycles: 7_000 } });
    initRx(env, 8, E1000_RCTL.SECRC);
    initTx(env, 8);
    env.wr(R.IMS, ICR.RXT0);
    const f = frame(DEFAULT_PEER_MAC, 64, 4);
    f.set(DEFAULT_GUEST_MAC, 6); // from the guest to the peer
    for (let i = 0; i < 64; i++) env.mem.write8(0x20000 + i, f[i]!);
    txDesc(env.mem, 0, 0x20000, 64, CMD.EOP | CMD.RS);
    env.cpu.cycles = 1000;
    env.wr(R.TDT, 1);
    env.rd(R.ICR);
    advanceTo(env.cpu, 7999);
    expect(env.rd(R.RDH)).toBe(0);
    advanceTo(env.cpu, 8000);
    expect(env.rd(R.RDH)).toBe(1);
    const got = env.mem.u8.slice(0x10000, 0x10000 + 64);
    expect([...got.subarray(0, 6)]).toEqual([...DEFAULT_GUEST_MAC]);
    expect([...got.subarray(6, 12)]).toEqual([...DEFAULT_PEER_MAC]);
    expect(got.subarray(12)).toEqual(f.subarray(12));
  });

  it('computes the Ethernet CRC-32 (check value of "123456789")', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('never consults the wall clock or Math.random', () => {
    const boom = (): never => { throw new Error('nondeterministic source used'); };
    vi.spyOn(Math, 'random').mockImplementation(boom);
    vi.spyOn(Date, 'now').mockImplementation(boom);
    vi.spyOn(performance, 'now').mockImplementation(boom);
    vi.spyOn(process, 'hrtime').mockImplementation(boom as never);
    const { log } = poissonRun(5, 50_000, 500_000);
    expect(log.length).toBeGreaterThan(0);
  });
});
