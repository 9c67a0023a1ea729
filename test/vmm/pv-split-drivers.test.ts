/**
 * Shared rings and the blkif / netif back ends, driven by a front end written in the test
 * (rings, grants and event channel set up as blkfront/netfront do), against the same Disk
 * and NetLink models the emulated devices use. Hostile requests get error responses and
 * never move data outside the granted frames.
 */
import { describe, expect, it } from 'vitest';
import { AtaController, Disk, SECTOR_SIZE } from '../../src/machine/devices/block-device.js';
import { ramDma } from '../../src/machine/devices/device-io.js';
import { NetLink } from '../../src/machine/devices/nic.js';
import { BLKIF_INFO_SECTORS, BLKIF_RING_REF } from '../../src/vmm/pv/blkback.js';
import { DOMID_SELF, EVTCHNOP, isPending } from '../../src/vmm/pv/event-channel.js';
import { GNTST, GNTTABOP, GTF, type GrantTable as GrantTableT } from '../../src/vmm/pv/grant-table.js';
import type { DomId, Pfn, PvDomainContext } from '../../src/vmm/pv/domain-context.js';
import { NETIF_INFO_MAC, NETIF_RX_RING_REF, NETIF_TX_RING_REF } from '../../src/vmm/pv/netback.js';
import {
  BLKIF_ENTRY_SIZE, BLKIF_OP, BLKIF_REQ, BLKIF_RSP, BLKIF_RSP_LAYOUT, BLK_RING_SIZE, FrontRing, NETIF_RSP, NETIF_RX_ENTRY_SIZE,
  NETIF_TX_ENTRY_SIZE, NETTXF, NET_RX_RING_SIZE, NET_TX_RING_SIZE, SRING, ringSize, sharedRingInit,
} from '../../src/vmm/pv/ring.js';
import { BLKBACK_PORT, NETBACK_PORT, createSplitDrivers, splitDriverCosts } from '../../src/vmm/pv/split-backends.js';
import { loadProfile } from '../../src/profiles/index.js';
import { OWNED_FRAMES, SHARED_INFO_MFN, fakeClock, fakeContext } from './pv-fake-context.js';
import { runWorkload } from './pv-frontend-harness.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { buildWorkload } from '../../src/guest/workloads/index.js';
import { runGuest } from '../../src/trace/run-guest.js';

const ARG = 0x6000, TABLE = 20, RING = 21, TXRING = 22, RXRING = 23, BUF = 30; // frames
const COSTS = { eventChannelSend: 250, grantMap: 1200, grantUnmap: 1500, perRequest: 1000, dmaPerByte: 0.5, dom0BlockRequest: 14_000, dom0NetTx: 4_000, dom0NetRx: 4_000 };
const SECTORS = 64;

function image(): Uint8Array {
  const img = new Uint8Array(SECTORS * SECTOR_SIZE);
  for (let i = 0; i < img.length; i++) img[i] = (i * 7 + (i >> 9)) & 0xff;
  return img;
}

function frontEnd(opts: { disk?: boolean; net?: boolean; arrivals?: { atCycle: number; data: Uint8Array }[] }) {
  const ctx = fakeContext(1);
  const mem = ctx.mem;
  const t = fakeClock();
  const disk = opts.disk ? new Disk(t.clock, { image: image(), seed: 1, latency: { baseCycles: 1000, perSectorCycles: 10, jitterCycles: 0 } }) : null;
  const link = opts.net ? new NetLink(t.clock, { seed: 1, frames: opts.arrivals ?? [] }) : null;
  // The receiving port the machine would attach: an object with receive(), as the e1000.
  const nic = link ? { link, receive: (_f: Uint8Array): void => { throw new Error('the e1000 should not receive in pv mode'); } } : null;
  const drivers = createSplitDrivers(ctx, COSTS, { disk, nic: nic as never });
  link?.attach(nic!);
  const hc = (cmd: number, words: number[]): number => {
    words.forEach((w, i) => mem.write32(ARG + 4 * i, w));
    return drivers.events.hypercall(cmd, ARG);
  };
  // Grant table in frame TABLE.
  mem.write32(ARG + 0x100, TABLE);
  mem.write16(ARG, DOMID_SELF); mem.write32(ARG + 4, 1); mem.write32(ARG + 12, ARG + 0x100);
  expect(drivers.grants.hypercall(GNTTABOP.setup_table, ARG, 1)).toBe(0);
  const grant = (ref: number, frame: number, readonly = false, domid = 0): void => {
    const at = TABLE * 4096 + ref * 8;
    mem.write16(at + 2, domid); mem.write32(at + 4, frame); mem.write16(at, GTF.permit_access | (readonly ? GTF.readonly : 0));
  };
  const bind = (dom0Port: number): number => {
    const rc = hc(EVTCHNOP.bind_interdomain, [0, dom0Port, 0]);
    return rc === 0 ? mem.read32(ARG + 8) : rc;
  };
  return { ctx, mem, t, disk, link, drivers, hc, grant, bind };
}

function blkRequest(op: number, id: number, sector: number, segs: { gref: number; first: number; last: number }[], nrSegments = segs.length): Uint8Array {
  const r = new Uint8Array(BLKIF_ENTRY_SIZE);
  const dv = new DataView(r.buffer);
  r[BLKIF_REQ.OPERATION] = op;
  r[BLKIF_REQ.NR_SEGMENTS] = nrSegments;
  dv.setUint32(BLKIF_REQ.ID, id, true);
  dv.setUint32(BLKIF_REQ.ID + 4, 0xabcd, true);
  dv.setUint32(BLKIF_REQ.SECTOR, sector, true);
  segs.forEach((s, i) => {
    const o = BLKIF_REQ.SEG + i * BLKIF_REQ.SEG_SIZE;
    dv.setUint32(o, s.gref, true);
    r[o + BLKIF_REQ.SEG_FIRST] = s.first;
    r[o + BLKIF_REQ.SEG_LAST] = s.last;
  });
  return r;
}

function blkSetup() {
  const f = frontEnd({ disk: true });
  sharedRingInit(f.mem, RING * 4096);
  f.grant(BLKIF_RING_REF, RING);
  const port = f.bind(BLKBACK_PORT);
  expect(port).toBeGreaterThan(0);
  const front = new FrontRing(f.mem, RING * 4096, BLKIF_ENTRY_SIZE);
  const send = (): number => f.hc(EVTCHNOP.send, [port]);
  const responses = (): { id: number; idHi: number; op: number; status: number }[] => {
    const out = [];
    const buf = new Uint8Array(BLKIF_ENTRY_SIZE);
    while (front.unconsumedResponses() > 0) {
      front.takeResponse(buf);
      const dv = new DataView(buf.buffer);
      out.push({ id: dv.getUint32(0, true), idHi: dv.getUint32(4, true), op: buf[BLKIF_RSP_LAYOUT.OPERATION]!, status: dv.getInt16(BLKIF_RSP_LAYOUT.STATUS, true) });
    }
    return out;
  };
  return { ...f, port, front, send, responses, blkback: f.drivers.blkback! };
}

describe('ring.h layout', () => {
  it('ring sizes of the i386 blkif and netif rings', () => {
    expect(BLK_RING_SIZE).toBe(32); // (4096 - 64) / 108 = 37 → 32
    expect(NET_TX_RING_SIZE).toBe(256);
    expect(NET_RX_RING_SIZE).toBe(256);
    expect(ringSize(7)).toBe(512);
    expect(SRING.RING).toBe(64);
  });
});

describe('blkback', () => {
  it('connects on bind: maps the ring grant and publishes the disk size', () => {
    const f = blkSetup();
    expect(f.blkback.connected).toBe(true);
    expect(f.mem.read32(RING * 4096 + BLKIF_INFO_SECTORS)).toBe(SECTORS);
    expect(f.ctx.mem.read16(TABLE * 4096 + BLKIF_RING_REF * 8) & (GTF.reading | GTF.writing)).toBe(GTF.reading | GTF.writing);
  });

  it('a read request: the disk model serves it, data lands in the granted frame, response OKAY and a notification', () => {
    const f = blkSetup();
    f.grant(8, BUF);
    f.front.putRequest(blkRequest(BLKIF_OP.READ, 77, 5, [{ gref: 8, first: 1, last: 3 }]));
    expect(f.front.pushRequestsAndCheckNotify()).toBe(true); // req_event = 1 initially
    expect(f.send()).toBe(0);
    expect(f.disk!.pending).toBe(1);
    expect(f.responses()).toEqual([]); // not before the disk completes
    f.t.advanceTo(10_000);
    expect(f.responses()).toEqual([{ id: 77, idHi: 0xabcd, op: BLKIF_OP.READ, status: BLKIF_RSP.OKAY }]);
    const img = image();
    expect([...f.mem.u8.subarray(BUF * 4096 + 512, BUF * 4096 + 2048)]).toEqual([...img.subarray(5 * 512, 8 * 512)]);
    expect(f.mem.u8[BUF * 4096]).toBe(0); // first_sect 1: sector 0 of the frame untouched
    expect(f.disk!.counters).toMatchObject({ requests: 1, completions: 1, sectorsRead: 3, sectorsWritten: 0 });
    expect(isPending(f.mem, SHARED_INFO_MFN, f.port)).toBe(true);
    expect(f.blkback.counters.notifications).toBe(1);
    expect(f.ctx.mem.read16(TABLE * 4096 + 8 * 8)).toBe(GTF.permit_access); // unmapped again
    expect(f.ctx.charges.get('device')!.cycles).toBe(1000 + 14_000 + 3 * 512 * 0.5); // decode + dom0's 14 register accesses + the copy
  });

  it('a write request of two segments writes the disk image in order', () => {
    const f = blkSetup();
    f.grant(8, BUF, true); f.grant(9, BUF + 1, true);
    f.mem.u8.fill(0xaa, BUF * 4096, BUF * 4096 + 4096);
    f.mem.u8.fill(0xbb, (BUF + 1) * 4096, (BUF + 1) * 4096 + 4096);
    f.front.putRequest(blkRequest(BLKIF_OP.WRITE, 1, 10, [{ gref: 8, first: 7, last: 7 }, { gref: 9, first: 0, last: 1 }]));
    f.front.pushRequestsAndCheckNotify();
    f.send();
    f.t.advanceTo(10_000);
    expect(f.responses()[0]!.status).toBe(BLKIF_RSP.OKAY);
    const img = f.disk!.image;
    expect(img.subarray(10 * 512, 11 * 512).every((b) => b === 0xaa)).toBe(true);
    expect(img.subarray(11 * 512, 13 * 512).every((b) => b === 0xbb)).toBe(true);
    expect(img[13 * 512]).toBe(image()[13 * 512]);
    expect(f.disk!.counters.sectorsWritten).toBe(3);
  });

  it('the logical I/O equals the emulated ATA path for the same requests', () => {
    // The same three requests through the ATA model (its Disk) and through blkback.
    const reqs: [('read' | 'write'), number, number][] = [['read', 3, 8], ['write', 20, 2], ['read', 20, 1]];
    const t = fakeClock();
    const disk = new Disk(t.clock, { image: image(), seed: 1, latency: { baseCycles: 1000, perSectorCycles: 10, jitterCycles: 0 } });
    const ata = new AtaController(disk, ramDma(fakeContext().mem), () => undefined);
    expect(ata.disk).toBe(disk);
    for (const [op, lba, n] of reqs) disk.submit(op, lba, n, (r) => { if (r.op === 'read') disk.readSectors(r.lba, r.count, new Uint8Array(n * 512)); else disk.writeSectors(r.lba, new Uint8Array(n * 512)); });
    t.advanceTo(100_000);
    const f = blkSetup();
    f.grant(8, BUF);
    for (const [op, lba, n] of reqs) f.front.putRequest(blkRequest(op === 'read' ? BLKIF_OP.READ : BLKIF_OP.WRITE, lba, lba, [{ gref: 8, first: 0, last: n - 1 }]));
    f.front.pushRequestsAndCheckNotify(); f.send();
    f.t.advanceTo(100_000);
    expect(f.disk!.counters).toEqual(disk.counters);
    expect(f.responses().map((r) => r.status)).toEqual([0, 0, 0]);
    // Read 3..10 into the frame, wrote its first two sectors to 20..21, read 20 back: sector 3's data.
    expect([...f.mem.u8.subarray(BUF * 4096, BUF * 4096 + 512)]).toEqual([...image().subarray(3 * 512, 4 * 512)]);
  });

  it('batching and notification suppression through req_event / rsp_event', () => {
    const f = blkSetup();
    f.grant(8, BUF);
    for (let i = 0; i < 3; i++) f.front.putRequest(blkRequest(BLKIF_OP.READ, i, i, [{ gref: 8, first: 0, last: 0 }]));
    expect(f.front.pushRequestsAndCheckNotify()).toBe(true);
    f.send();
    expect(f.blkback.counters.maxBatch).toBe(3);
    expect(f.blkback.counters.batches).toBe(1);
    // The back end's final check asked for the next request: req_event = req_cons + 1.
    expect(f.mem.read32(RING * 4096 + SRING.REQ_EVENT)).toBe(4);
    // The front end is not going to sleep: it leaves rsp_event at 1, so only the first response notifies.
    f.t.advanceTo(100_000);
    expect(f.responses().length).toBe(3);
    expect(f.blkback.counters.notifications).toBe(1);
    expect(f.blkback.counters.suppressed).toBe(2);
    // Front end sets rsp_event = rsp_cons + 1 (RING_FINAL_CHECK_FOR_RESPONSES): the next response notifies.
    expect(f.front.finalCheckForResponses()).toBe(false);
    f.front.putRequest(blkRequest(BLKIF_OP.READ, 9, 0, [{ gref: 8, first: 0, last: 0 }]));
    expect(f.front.pushRequestsAndCheckNotify()).toBe(true);
    f.send();
    f.t.advanceTo(200_000);
    expect(f.blkback.counters.notifications).toBe(2);
    // Requests pushed while req_event is behind need no notification (the back end is told once).
    f.front.putRequest(blkRequest(BLKIF_OP.READ, 10, 0, [{ gref: 8, first: 0, last: 0 }]));
    f.mem.write32(RING * 4096 + SRING.REQ_EVENT, 100);
    expect(f.front.pushRequestsAndCheckNotify()).toBe(false);
  });

  it('hostile requests get error responses, move no data, and are counted', () => {
    const f = blkSetup();
    f.grant(8, BUF);
    f.grant(9, OWNED_FRAMES + 5); // a frame the guest does not own
    f.grant(10, BUF + 1, true); // read-only: cannot be the target of a read
    f.grant(11, BUF + 2, false, 3); // granted to another domain
    f.mem.write16(TABLE * 4096 + 12 * 8, GTF.invalid); // 12: revoked
    const bad = [
      blkRequest(7, 1, 0, [{ gref: 8, first: 0, last: 0 }]),
      blkRequest(BLKIF_OP.READ, 2, 0, []),
      blkRequest(BLKIF_OP.READ, 3, 0, new Array(11).fill({ gref: 8, first: 0, last: 0 }), 12),
      blkRequest(BLKIF_OP.READ, 4, 0, [{ gref: 8, first: 0, last: 8 }]),
      blkRequest(BLKIF_OP.READ, 5, 0, [{ gref: 8, first: 3, last: 2 }]),
      blkRequest(BLKIF_OP.READ, 6, SECTORS - 1, [{ gref: 8, first: 0, last: 1 }]),
      blkRequest(BLKIF_OP.READ, 7, 0, [{ gref: 9, first: 0, last: 0 }]),
      blkRequest(BLKIF_OP.READ, 8, 0, [{ gref: 10, first: 0, last: 0 }]),
      blkRequest(BLKIF_OP.READ, 9, 0, [{ gref: 11, first: 0, last: 0 }]),
      blkRequest(BLKIF_OP.READ, 10, 0, [{ gref: 12, first: 0, last: 0 }]),
      blkRequest(BLKIF_OP.READ, 11, 0, [{ gref: 8, first: 0, last: 0 }, { gref: 600, first: 0, last: 0 }]),
    ];
    const before = f.mem.u8.slice();
    for (const r of bad) f.front.putRequest(r);
    f.front.pushRequestsAndCheckNotify(); f.send();
    f.t.advanceTo(100_000);
    const rs = f.responses();
    expect(rs.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(rs[0]!.status).toBe(BLKIF_RSP.EOPNOTSUPP);
    for (const r of rs.slice(1)) expect(r.status).toBe(BLKIF_RSP.ERROR);
    expect(f.disk!.counters.requests).toBe(0);
    // Only the ring page (responses, req_event), the shared_info bits and the hypercall argument changed.
    for (let a = 0; a < f.mem.size; a++) {
      const fr = Math.floor(a / 4096);
      if (f.mem.u8[a] !== before[a] && fr !== RING && fr !== SHARED_INFO_MFN && (a < ARG || a >= ARG + 4)) throw new Error(`changed 0x${a.toString(16)}`);
    }
    expect(f.drivers.grants.liveMappings).toBe(1); // the ring itself
    expect(f.blkback.counters.errors).toBe(11);
    expect(f.ctx.rejected.get('blkback-bad-grant')).toBe(5);
  });

  it('a producer index that overruns the ring halts it', () => {
    const f = blkSetup();
    f.mem.write32(RING * 4096 + SRING.REQ_PROD, 0x8000_0000);
    expect(f.send()).toBe(0);
    expect(f.disk!.counters.requests).toBe(0);
    expect(f.ctx.rejected.get('blkback-ring-overflow')).toBe(1);
    expect(f.mem.read32(RING * 4096 + SRING.RSP_PROD)).toBe(0);
  });

  it('no ring grant: the bind succeeds but the back end stays disconnected', () => {
    const f = frontEnd({ disk: true });
    expect(f.bind(BLKBACK_PORT)).toBeGreaterThan(0);
    expect(f.drivers.blkback!.connected).toBe(false);
    expect(f.ctx.rejected.get('blkback-ring-grant')).toBe(1);
    // And without a disk there is no back end to bind to.
    const g = frontEnd({});
    expect(g.bind(BLKBACK_PORT)).toBe(-22);
  });
});

function txRequest(gref: number, offset: number, flags: number, id: number, size: number): Uint8Array {
  const r = new Uint8Array(NETIF_TX_ENTRY_SIZE);
  const dv = new DataView(r.buffer);
  dv.setUint32(0, gref, true); dv.setUint16(4, offset, true); dv.setUint16(6, flags, true); dv.setUint16(8, id, true); dv.setUint16(10, size, true);
  return r;
}
function rxRequest(id: number, gref: number): Uint8Array {
  const r = new Uint8Array(NETIF_RX_ENTRY_SIZE);
  const dv = new DataView(r.buffer);
  dv.setUint16(0, id, true); dv.setUint32(4, gref, true);
  return r;
}

function netSetup(arrivals: { atCycle: number; data: Uint8Array }[] = []) {
  const f = frontEnd({ net: true, arrivals });
  sharedRingInit(f.mem, TXRING * 4096);
  sharedRingInit(f.mem, RXRING * 4096);
  f.grant(NETIF_TX_RING_REF, TXRING);
  f.grant(NETIF_RX_RING_REF, RXRING);
  const port = f.bind(NETBACK_PORT);
  expect(port).toBeGreaterThan(0);
  const tx = new FrontRing(f.mem, TXRING * 4096, NETIF_TX_ENTRY_SIZE);
  const rx = new FrontRing(f.mem, RXRING * 4096, NETIF_RX_ENTRY_SIZE);
  return { ...f, port, tx, rx, netback: f.drivers.netback!, link: f.link! };
}

describe('netback', () => {
  it('publishes the MAC; transmits a frame from a granted buffer, padded to 60 bytes', () => {
    const f = netSetup();
    expect([...f.mem.u8.subarray(TXRING * 4096 + NETIF_INFO_MAC, TXRING * 4096 + NETIF_INFO_MAC + 6)]).toEqual([...f.link.guestMac]);
    const frame = Uint8Array.from({ length: 42 }, (_, i) => i + 1);
    f.mem.u8.set(frame, BUF * 4096 + 100);
    f.grant(8, BUF, true);
    f.tx.putRequest(txRequest(8, 100, 0, 5, 42));
    f.tx.pushRequestsAndCheckNotify();
    expect(f.hc(EVTCHNOP.send, [f.port])).toBe(0);
    expect(f.link.transmittedFrames.length).toBe(1);
    const sent = f.link.transmittedFrames[0]!;
    expect(sent.length).toBe(60);
    expect([...sent.subarray(0, 42)]).toEqual([...frame]);
    expect(sent.subarray(42).every((b) => b === 0)).toBe(true);
    const rsp = new Uint8Array(NETIF_TX_ENTRY_SIZE);
    f.tx.takeResponse(rsp);
    expect(new DataView(rsp.buffer).getUint16(0, true)).toBe(5);
    expect(new DataView(rsp.buffer).getInt16(2, true)).toBe(NETIF_RSP.OKAY);
  });

  it('a packet in three fragments (NETTXF_more_data; the first size is the total)', () => {
    const f = netSetup();
    for (let i = 0; i < 3; i++) { f.grant(8 + i, BUF + i, true); f.mem.u8.fill(0x10 + i, (BUF + i) * 4096, (BUF + i) * 4096 + 4096); }
    f.tx.putRequest(txRequest(8, 0, NETTXF.more_data, 1, 100 + 200 + 300));
    f.tx.putRequest(txRequest(9, 0, NETTXF.more_data, 2, 200));
    f.tx.putRequest(txRequest(10, 0, 0, 3, 300));
    f.tx.pushRequestsAndCheckNotify(); f.hc(EVTCHNOP.send, [f.port]);
    const sent = f.link.transmittedFrames[0]!;
    expect(sent.length).toBe(600);
    expect(sent[0]).toBe(0x10); expect(sent[100]).toBe(0x11); expect(sent[300]).toBe(0x12);
    expect(f.tx.unconsumedResponses()).toBe(3);
  });

  it('hostile transmit requests: bad grant, offset past the page, truncated packet → errors, nothing sent', () => {
    const f = netSetup();
    f.grant(8, BUF, true);
    f.tx.putRequest(txRequest(300, 0, 0, 1, 60)); // no such grant entry content
    f.tx.putRequest(txRequest(8, 4090, 0, 2, 60)); // crosses the page end
    f.tx.putRequest(txRequest(8, 0, NETTXF.extra_info, 3, 60));
    f.tx.putRequest(txRequest(8, 0, NETTXF.more_data, 4, 60)); // the packet never ends
    f.tx.pushRequestsAndCheckNotify(); f.hc(EVTCHNOP.send, [f.port]);
    expect(f.link.transmittedFrames.length).toBe(0);
    const st: number[] = [];
    const rsp = new Uint8Array(NETIF_TX_ENTRY_SIZE);
    while (f.tx.unconsumedResponses() > 0) { f.tx.takeResponse(rsp); st.push(new DataView(rsp.buffer).getInt16(2, true)); }
    expect(st).toEqual([NETIF_RSP.ERROR, NETIF_RSP.ERROR, NETIF_RSP.ERROR, NETIF_RSP.OKAY]);
    expect(f.netback.counters.txErrors).toBe(4);
  });

  it('receives arrivals into posted buffers, filters as the e1000 does, drops without a buffer', () => {
    const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const mk = (dst: number[], n: number, tag: number): Uint8Array => { const d = new Uint8Array(n).fill(tag); d.set(dst, 0); return d; };
    const arrivals = [
      { atCycle: 100, data: mk(mac, 64, 1) },
      { atCycle: 200, data: mk([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 80, 2) },
      { atCycle: 300, data: mk([0x01, 0, 0x5e, 0, 0, 1], 64, 3) }, // multicast: filtered
      { atCycle: 400, data: mk([0x52, 0x54, 0, 0, 0, 9], 64, 4) }, // another MAC: filtered
      { atCycle: 500, data: mk(mac, 1600, 5) }, // too long
      { atCycle: 600, data: mk(mac, 70, 6) }, // no buffer left
    ];
    const f = netSetup(arrivals);
    f.grant(8, BUF); f.grant(9, BUF + 1);
    f.rx.putRequest(rxRequest(40, 8)); f.rx.putRequest(rxRequest(41, 9));
    f.rx.pushRequestsAndCheckNotify();
    f.t.advanceTo(1000);
    const rsp = new Uint8Array(NETIF_RX_ENTRY_SIZE);
    const got: [number, number][] = [];
    while (f.rx.unconsumedResponses() > 0) { f.rx.takeResponse(rsp); const dv = new DataView(rsp.buffer); got.push([dv.getUint16(0, true), dv.getInt16(6, true)]); }
    expect(got).toEqual([[40, 64], [41, 80]]);
    expect(f.mem.u8[BUF * 4096 + 6]).toBe(1);
    expect(f.mem.u8[(BUF + 1) * 4096 + 79]).toBe(2);
    expect(f.netback.counters).toMatchObject({ rxFrames: 2, rxDropped: 4, rxNoBuffer: 1 });
    expect(f.link.counters.arrivals).toBe(6);
    expect(isPending(f.mem, SHARED_INFO_MFN, f.port)).toBe(true);
  });

  it('an RX request naming a foreign frame gets an error and writes nothing there', () => {
    const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const d = new Uint8Array(64).fill(9); d.set(mac);
    const f = netSetup([{ atCycle: 10, data: d }]);
    f.grant(8, OWNED_FRAMES + 7);
    f.rx.putRequest(rxRequest(1, 8)); f.rx.pushRequestsAndCheckNotify();
    f.t.advanceTo(100);
    expect(f.mem.u8[(OWNED_FRAMES + 7) * 4096 + 10]).toBe(0);
    const rsp = new Uint8Array(NETIF_RX_ENTRY_SIZE);
    f.rx.takeResponse(rsp);
    expect(new DataView(rsp.buffer).getInt16(6, true)).toBe(NETIF_RSP.ERROR);
  });

  it('TX and RX rings in one frame are refused', () => {
    const f = frontEnd({ net: true });
    f.grant(NETIF_TX_RING_REF, TXRING); f.grant(NETIF_RX_RING_REF, TXRING);
    expect(f.bind(NETBACK_PORT)).toBeGreaterThan(0);
    expect(f.drivers.netback!.connected).toBe(false);
    expect(f.drivers.grants.liveMappings).toBe(0);
  });
});

describe('blkfront / netfront on the CPU, against the back ends (stand-in hypervisor: pv-frontend-harness.ts)', () => {
  const checksum = (s: string): string => /checksum: (0x[0-9a-f]+)/.exec(s)?.[1] ?? `no checksum in:\n${s}`;
  it('database: same checksum and the same disk requests and sectors as the ATA driver', () => {
    const n = runWorkload('database', { txns: '12', dbsize: '64' }, false);
    const p = runWorkload('database', { txns: '12', dbsize: '64' }, true);
    expect(n.outcome.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(p.outcome.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(n.console).toContain('ata0: disk');
    expect(p.console).toContain('blkfront: disk, 64 sectors');
    expect(checksum(p.console)).toBe(checksum(n.console));
    expect(p.machine.disk!.disk.counters).toEqual(n.machine.disk!.disk.counters);
    expect(p.machine.disk!.counters.commands).toBe(0); // the ATA registers were never touched
    expect(p.drivers!.blkback!.counters.requests).toBe(n.machine.disk!.disk.counters.requests);
    expect(p.drivers!.grants.liveMappings).toBe(1); // only the ring
    expect([...p.rejected.keys()]).toEqual([]); // netfront's probe (no NIC) is not an attack
    expect(p.drivers!.events.counters.absentDevice).toBe(1);
    const st = p.drivers!.stats();
    expect(st['blkback.requests']).toBe(n.machine.disk!.disk.counters.requests);
    expect(st['gnttab.maps']).toBe(st['blkback.requests']! + 1); // one data page per request, and the ring
    expect(st['gnttab.unmaps']).toBe(st['blkback.requests']);
    expect(st['netback.txFrames']).toBeUndefined();
    // The back end's work is charged: per request, per byte, per grant operation, per notification.
    const acc = p.machine.cpu.overhead;
    expect(acc.get('device')!.count).toBeGreaterThanOrEqual(2 * st['blkback.requests']!);
    const c = splitDriverCosts(loadProfile('core2-2008').profile);
    expect(acc.get('hypercall:grant_table_op')!.cycles).toBe(st['gnttab.maps']! * c.grantMap + st['gnttab.unmaps']! * c.grantUnmap);
    expect(acc.get('event')!.count).toBe(st['blkback.notifications']);
  });

  it('pingpong over the net: same checksum, same frames on the wire as the e1000 driver', () => {
    const n = runWorkload('pingpong', { via: 'net', n: '20' }, false);
    const p = runWorkload('pingpong', { via: 'net', n: '20' }, true);
    expect(p.outcome.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(p.console).toContain('netfront: mac 52:54:00:12:34:56');
    expect(checksum(p.console)).toBe(checksum(n.console));
    expect(p.machine.nic!.link.transmittedSha256()).toBe(n.machine.nic!.link.transmittedSha256());
    expect(p.machine.nic!.link.counters).toEqual(n.machine.nic!.link.counters);
    expect(p.machine.nic!.counters.registerAccesses).toBe(0);
    const c = p.drivers!.netback!.counters;
    expect(c.txFrames).toBe(20);
    expect(c.rxFrames).toBe(20);
    // Transmit responses do not interrupt (netfront never moves the TX rsp_event): suppression at work.
    expect(c.suppressed).toBeGreaterThanOrEqual(19);
  });
});

describe('under --mode pv (the pv hypervisor and kernel): disk and net workloads give native\'s outcome', () => {
  const run = (name: string, params: Record<string, string>, mode: 'native' | 'pv') => {
    const w = buildWorkload(name, params);
    return runGuest({
      image: { bytes: toMultibootElf(w.image), path: `workload:${name}` }, devices: w.machine, mode,
      profile: loadProfile('core2-2008'), maxInstructions: w.maxInstructions,
    });
  };
  const checksum = (s: string): string => /checksum: (0x[0-9a-f]+)/.exec(s)?.[1] ?? `no checksum in:\n${s}`;
  for (const [name, params] of [['database', { txns: '12', dbsize: '64' }], ['pingpong', { via: 'net', n: '20' }]] as const) {
    it(`${name}`, () => {
      const n = run(name, params, 'native'), p = run(name, params, 'pv');
      expect(p.status).toBe(n.status);
      expect(p.outcome.exit).toEqual({ reason: 'exit-device', code: 1 });
      expect(checksum(p.machine.console.text())).toBe(checksum(n.machine.console.text()));
      if (name === 'database') {
        expect(p.machine.console.text()).toContain('blkfront: disk, 64 sectors');
        expect(p.machine.disk!.disk.counters).toEqual(n.machine.disk!.disk.counters);
        expect(p.machine.disk!.counters.commands).toBe(0);
      } else {
        expect(p.machine.console.text()).toContain('netfront: mac 52:54:00:12:34:56');
        expect(p.machine.nic!.link.transmittedSha256()).toBe(n.machine.nic!.link.transmittedSha256());
        expect(p.machine.nic!.link.counters).toEqual(n.machine.nic!.link.counters);
        expect(p.machine.nic!.counters.registerAccesses).toBe(0);
      }
      const st = p.monitor.stats();
      expect(st['evtchn.guestSends']).toBeGreaterThan(0);
      expect(st['evtchn.rejected']).toBe(0);
      expect(st['gnttab.rejected']).toBe(0);
      expect(Object.keys(st).filter((k) => k.startsWith('attack.'))).toEqual([]);
    });
  }
});

describe('grants under --mode pv: the hypervisor\'s frames are never granted', () => {
  it('a grant naming shared_info or monitor memory is refused with GNTST_bad_page', () => {
    const w = buildWorkload('database', { txns: '2', dbsize: '16' });
    const r = runGuest({ image: { bytes: toMultibootElf(w.image), path: 'workload:database' }, devices: w.machine, mode: 'pv', profile: loadProfile('core2-2008'), maxInstructions: w.maxInstructions });
    expect(r.outcome.exit).toEqual({ reason: 'exit-device', code: 1 });
    const pv = r.monitor as unknown as PvDomainContext & { drivers: { grants: GrantTableT } };
    const grants = pv.drivers.grants;
    expect(grants.nrFrames).toBe(1);
    // The guest's table frame: the kernel's xen_gnttab, through its P2M.
    const va = w.image.symbols.find((s) => s.name === 'xen_gnttab')!.addr;
    const table = (pv.p2m(((va - 0xc000_0000) >>> 12) as Pfn) as number) * 4096;
    const entry = (ref: number, frame: number): void => {
      r.machine.mem.write16(table + ref * 8 + 2, 0); r.machine.mem.write32(table + ref * 8 + 4, frame); r.machine.mem.write16(table + ref * 8, GTF.permit_access);
    };
    entry(40, pv.sharedInfoMfn as number);
    entry(41, r.machine.mem.guestSize / 4096 + 3); // monitor memory
    entry(42, pv.p2m(5 as Pfn) as number); // an ordinary frame of the domain: fine
    expect(grants.mapGrant(40, 0 as DomId, true).status).toBe(GNTST.bad_page);
    expect(grants.mapGrant(41, 0 as DomId, false).status).toBe(GNTST.bad_page);
    const ok = grants.mapGrant(42, 0 as DomId, true);
    expect(ok.status).toBe(0);
    grants.unmapGrant(ok.handle);
    expect(r.monitor.stats()['attack.grant-foreign-frame']).toBe(2);
  });
});
