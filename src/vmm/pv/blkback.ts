/**
 * The block back end of the `pv` hypervisor model (Xen's blkback): takes blkif requests off
 * the front end's shared ring, maps the granted buffer frames, performs the I/O on the same
 * `Disk` model the emulated ATA controller uses (so sectors read and written, request count,
 * queueing and completion timing are the disk's own), then unmaps, answers on the ring and
 * notifies through the event channel unless the front end's rsp_event says it will look anyway.
 *
 * Hostile front ends: every request is copied out of the ring before it is looked at; a bad
 * operation, segment count, sector range, segment bounds or grant gets an error response
 * (BLKIF_RSP_ERROR / BLKIF_RSP_EOPNOTSUPP) and is counted; a producer index that overruns
 * the ring halts the ring (as Linux's blkback). Nothing a front end writes can make the back
 * end touch memory other than the granted frames.
 */
import type { Disk } from '../../machine/devices/block-device.js';
import { SECTOR_SIZE } from '../../machine/devices/block-device.js';
import type { DomId, PvDomainContext } from './domain-context.js';
import type { EventChannels } from './event-channel.js';
import type { GrantTable } from './grant-table.js';
import {
  BLKIF_ENTRY_SIZE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP, BLKIF_REQ, BLKIF_RSP, BLKIF_RSP_LAYOUT, BackRing, SRING,
} from './ring.js';

/** Device-model figures (the profile's `devices` section). */
export interface BackendDeviceCosts {
  /** The back end's device work per request (decode, submit, complete), cycles. */
  readonly perRequest: number;
  /** Cycles per byte copied between the device model and a granted frame. */
  readonly dmaPerByte: number;
  /**
   * The physical device's register accesses that domain 0's own native driver makes on the
   * guest's behalf, per block request / transmitted frame / received frame, in cycles (see
   * `splitDriverCosts`). On one CPU, dom0's driver time is time the guest does not run.
   */
  readonly dom0BlockRequest: number;
  readonly dom0NetTx: number;
  readonly dom0NetRx: number;
}

/** Counters for the run record and the tests. */
export interface BlkbackCounters {
  requests: number;
  responses: number;
  errors: number;
  /** Ring scans that found more than one request (a batch). */
  batches: number;
  /** Largest number of requests taken in one scan. */
  maxBatch: number;
  notifications: number;
  /** Responses pushed without a notification (the front end's rsp_event said not to). */
  suppressed: number;
  sectorsRead: number;
  sectorsWritten: number;
}

/** Grant reference of the blkif ring page (virtlab's fixed handshake; Xen passes it in xenstore's ring-ref). */
export const BLKIF_RING_REF = 2;
/** Where blkback publishes the disk size (sectors, u32) inside the ring's __pad (xenstore's `sectors` key). */
export const BLKIF_INFO_SECTORS = SRING.PAD;

interface Segment { handle: number; mfn: number; first: number; last: number }

/** The blkif back end for one front end. */
export class Blkback {
  readonly counters: BlkbackCounters = { requests: 0, responses: 0, errors: 0, batches: 0, maxBatch: 0, notifications: 0, suppressed: 0, sectorsRead: 0, sectorsWritten: 0 };
  /** Domain-0 event-channel port the front end binds to. */
  readonly port: number;
  private ring: BackRing | null = null;
  private ringHandle = -1;
  private readonly req = new Uint8Array(BLKIF_ENTRY_SIZE);
  private readonly rsp = new Uint8Array(BLKIF_ENTRY_SIZE);
  private scratch = new Uint8Array(BLKIF_MAX_SEGMENTS_PER_REQUEST * 4096);
  /** Incremented at each (dis)connection: a completion for an old connection is dropped. */
  private generation = 0;

  constructor(
    private readonly ctx: PvDomainContext,
    private readonly events: EventChannels,
    private readonly grants: GrantTable,
    readonly disk: Disk,
    private readonly costs: BackendDeviceCosts,
    port?: number,
  ) {
    this.port = events.dom0Listen({ onBind: () => this.connect(), onEvent: () => this.kick(), onClose: () => this.disconnect() }, port);
  }

  get connected(): boolean { return this.ring !== null; }

  /** The front end bound the channel: map its ring (grant BLKIF_RING_REF), publish the disk size. */
  private connect(): void {
    this.disconnect();
    const m = this.grants.mapGrant(BLKIF_RING_REF, 0 as DomId, false);
    if (m.status !== 0) { this.ctx.countRejected('blkback-ring-grant'); return; }
    this.ringHandle = m.handle;
    this.ring = new BackRing(this.ctx.mem, (m.mfn as number) * 4096, BLKIF_ENTRY_SIZE);
    this.ctx.mem.write32(this.ring.base + BLKIF_INFO_SECTORS, this.disk.sectors);
    this.kick();
  }

  private disconnect(): void {
    this.generation++;
    if (this.ringHandle >= 0) this.grants.unmapGrant(this.ringHandle);
    this.ringHandle = -1;
    this.ring = null;
  }

  /** The front end notified: take every request on the ring (and any that arrive meanwhile). */
  kick(): void {
    const ring = this.ring;
    if (ring === null) return;
    for (;;) {
      let batch = 0;
      while (ring.unconsumedRequests() > 0) {
        ring.takeRequest(this.req);
        batch++;
        this.handle();
      }
      if (batch > 1) this.counters.batches++;
      if (batch > this.counters.maxBatch) this.counters.maxBatch = batch;
      if (ring.broken) { this.ctx.countRejected('blkback-ring-overflow'); return; }
      if (!ring.finalCheckForRequests()) return;
    }
  }

  /** One request, copied into `this.req`. */
  private handle(): void {
    this.counters.requests++;
    const r = this.req;
    const dv = new DataView(r.buffer);
    const op = r[BLKIF_REQ.OPERATION]!;
    const nseg = r[BLKIF_REQ.NR_SEGMENTS]!;
    const idLo = dv.getUint32(BLKIF_REQ.ID, true), idHi = dv.getUint32(BLKIF_REQ.ID + 4, true);
    const secLo = dv.getUint32(BLKIF_REQ.SECTOR, true), secHi = dv.getUint32(BLKIF_REQ.SECTOR + 4, true);
    this.ctx.charge('device', this.costs.perRequest + this.costs.dom0BlockRequest);
    if (op !== BLKIF_OP.READ && op !== BLKIF_OP.WRITE) { this.respond(idLo, idHi, op, BLKIF_RSP.EOPNOTSUPP, 'blkback-bad-op'); return; }
    if (nseg < 1 || nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST) { this.respond(idLo, idHi, op, BLKIF_RSP.ERROR, 'blkback-bad-nr-segments'); return; }
    let sectors = 0;
    for (let i = 0; i < nseg; i++) {
      const s = BLKIF_REQ.SEG + i * BLKIF_REQ.SEG_SIZE;
      const first = r[s + BLKIF_REQ.SEG_FIRST]!, last = r[s + BLKIF_REQ.SEG_LAST]!;
      if (last >= 4096 / SECTOR_SIZE || first > last) { this.respond(idLo, idHi, op, BLKIF_RSP.ERROR, 'blkback-bad-segment'); return; }
      sectors += last - first + 1;
    }
    if (secHi !== 0 || secLo + sectors > this.disk.sectors) { this.respond(idLo, idHi, op, BLKIF_RSP.ERROR, 'blkback-bad-sector'); return; }
    // Map every segment's frame: writable for a read (the device writes guest memory), read-only for a write.
    const segs: Segment[] = [];
    for (let i = 0; i < nseg; i++) {
      const s = BLKIF_REQ.SEG + i * BLKIF_REQ.SEG_SIZE;
      const m = this.grants.mapGrant(dv.getUint32(s + BLKIF_REQ.SEG_GREF, true), 0 as DomId, op === BLKIF_OP.WRITE);
      if (m.status !== 0) {
        for (const g of segs) this.grants.unmapGrant(g.handle);
        this.respond(idLo, idHi, op, BLKIF_RSP.ERROR, 'blkback-bad-grant');
        return;
      }
      segs.push({ handle: m.handle, mfn: m.mfn as number, first: r[s + BLKIF_REQ.SEG_FIRST]!, last: r[s + BLKIF_REQ.SEG_LAST]! });
    }
    const gen = this.generation;
    const lba = secLo;
    this.disk.submit(op === BLKIF_OP.READ ? 'read' : 'write', lba, sectors, () => this.complete(gen, op, lba, sectors, segs, idLo, idHi));
  }

  /** The disk finished: move the data between the disk image and the granted frames, answer. */
  private complete(gen: number, op: number, lba: number, sectors: number, segs: Segment[], idLo: number, idHi: number): void {
    const bytes = sectors * SECTOR_SIZE;
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(bytes);
    const data = this.scratch.subarray(0, bytes);
    const mem = this.ctx.mem.u8;
    if (op === BLKIF_OP.READ) {
      this.disk.readSectors(lba, sectors, data);
      this.counters.sectorsRead += sectors;
    }
    let pos = 0;
    for (const g of segs) {
      const at = g.mfn * 4096 + g.first * SECTOR_SIZE, n = (g.last - g.first + 1) * SECTOR_SIZE;
      if (op === BLKIF_OP.READ) mem.set(data.subarray(pos, pos + n), at);
      else data.set(mem.subarray(at, at + n), pos);
      pos += n;
    }
    if (op === BLKIF_OP.WRITE) {
      this.disk.writeSectors(lba, data, 0, sectors);
      this.counters.sectorsWritten += sectors;
    }
    this.ctx.charge('device', Math.round(bytes * this.costs.dmaPerByte));
    for (const g of segs) this.grants.unmapGrant(g.handle);
    if (gen !== this.generation) return; // the front end went away meanwhile
    this.respond(idLo, idHi, op, BLKIF_RSP.OKAY, null);
  }

  private respond(idLo: number, idHi: number, op: number, status: number, error: string | null): void {
    if (error !== null) { this.counters.errors++; this.ctx.countRejected(error); }
    const ring = this.ring;
    if (ring === null) return;
    const r = this.rsp;
    r.fill(0, 0, BLKIF_RSP_LAYOUT.SIZE);
    const dv = new DataView(r.buffer);
    dv.setUint32(BLKIF_RSP_LAYOUT.ID, idLo, true);
    dv.setUint32(BLKIF_RSP_LAYOUT.ID + 4, idHi, true);
    r[BLKIF_RSP_LAYOUT.OPERATION] = op;
    dv.setInt16(BLKIF_RSP_LAYOUT.STATUS, status, true);
    // Only the response's own bytes: the rest of the slot keeps the request (as the C union does).
    const a = ring.entryAddr(ring.rspProdPvt);
    this.ctx.mem.u8.set(r.subarray(0, BLKIF_RSP_LAYOUT.SIZE), a);
    ring.rspProdPvt = (ring.rspProdPvt + 1) >>> 0;
    this.counters.responses++;
    if (ring.pushResponsesAndCheckNotify()) {
      this.counters.notifications++;
      this.events.notifyFromDom0(this.port);
    } else {
      this.counters.suppressed++;
    }
  }
}
