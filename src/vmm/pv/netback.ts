/**
 * The network back end of the `pv` hypervisor model (Xen's netback): transmits the frames the
 * front end queues on its netif TX ring onto the same `NetLink` the emulated e1000 uses, and
 * delivers the link's arrivals into the buffers the front end posts on its RX ring — so the
 * frames on the wire (and their hash), and the frames the guest receives, are the link's own.
 *
 * Where the e1000 (as the kernel's driver programs it: RCTL = EN | BAM | SECRC, TCTL.PSP)
 * behaves in a guest-visible way, netback does the same, so the logical I/O matches: short
 * frames are padded to 60 bytes on transmit; on receive, frames shorter than 14 bytes, longer
 * than 1522, multicast, or unicast to another MAC are dropped, and a frame that finds no
 * posted buffer is dropped (no queue), as the e1000 drops it with no free descriptor.
 *
 * One event channel serves both rings (Xen's default; split channels are optional in netif.h).
 */
import type { NetLink, NetPort } from '../../machine/devices/nic.js';
import type { DomId, PvDomainContext } from './domain-context.js';
import type { EventChannels } from './event-channel.js';
import type { GrantTable } from './grant-table.js';
import type { BackendDeviceCosts } from './blkback.js';
import {
  BackRing, NETIF_RSP, NETIF_RX_ENTRY_SIZE, NETIF_RX_REQ, NETIF_RX_RSP, NETIF_TX_ENTRY_SIZE, NETIF_TX_REQ, NETIF_TX_RSP,
  NETTXF, SRING,
} from './ring.js';

/** Grant references of the TX and RX ring pages (virtlab's fixed handshake; xenstore's tx-ring-ref / rx-ring-ref). */
export const NETIF_TX_RING_REF = 3;
export const NETIF_RX_RING_REF = 4;
/** Where netback publishes the guest's MAC (6 bytes) in the TX ring's __pad (xenstore's `mac` key). */
export const NETIF_INFO_MAC = SRING.PAD;

const MIN_FRAME = 60, MAX_RX_FRAME = 1522, MAX_TX_FRAME = 65535;

/** Counters for the run record and the tests. */
export interface NetbackCounters {
  txRequests: number;
  txFrames: number;
  txErrors: number;
  rxFrames: number;
  /** Arrivals dropped: not connected, filtered, or no posted buffer. */
  rxDropped: number;
  rxNoBuffer: number;
  rxErrors: number;
  txBatches: number;
  maxTxBatch: number;
  notifications: number;
  suppressed: number;
}

/** The netif back end for one front end; it is the link's receiving port in `pv` mode. */
export class Netback implements NetPort {
  readonly counters: NetbackCounters = {
    txRequests: 0, txFrames: 0, txErrors: 0, rxFrames: 0, rxDropped: 0, rxNoBuffer: 0, rxErrors: 0, txBatches: 0, maxTxBatch: 0, notifications: 0, suppressed: 0,
  };
  readonly port: number;
  private tx: BackRing | null = null;
  private rx: BackRing | null = null;
  private readonly handles: number[] = [];
  private readonly req = new Uint8Array(NETIF_TX_ENTRY_SIZE);
  private readonly rsp = new Uint8Array(8);
  private readonly frame = new Uint8Array(MAX_TX_FRAME);

  constructor(
    private readonly ctx: PvDomainContext,
    private readonly events: EventChannels,
    private readonly grants: GrantTable,
    readonly link: NetLink,
    private readonly costs: BackendDeviceCosts,
    port?: number,
  ) {
    this.port = events.dom0Listen({ onBind: () => this.connect(), onEvent: () => this.kick(), onClose: () => this.disconnect() }, port);
  }

  get connected(): boolean { return this.tx !== null; }

  private connect(): void {
    this.disconnect();
    const t = this.grants.mapGrant(NETIF_TX_RING_REF, 0 as DomId, false);
    if (t.status !== 0) { this.ctx.countRejected('netback-ring-grant'); return; }
    const r = this.grants.mapGrant(NETIF_RX_RING_REF, 0 as DomId, false);
    if (r.status !== 0) { this.grants.unmapGrant(t.handle); this.ctx.countRejected('netback-ring-grant'); return; }
    if (t.mfn === r.mfn) {
      // Both rings in one frame would overlap: refuse rather than corrupt either.
      this.grants.unmapGrant(t.handle); this.grants.unmapGrant(r.handle);
      this.ctx.countRejected('netback-ring-shared-frame');
      return;
    }
    this.handles.push(t.handle, r.handle);
    this.tx = new BackRing(this.ctx.mem, (t.mfn as number) * 4096, NETIF_TX_ENTRY_SIZE);
    this.rx = new BackRing(this.ctx.mem, (r.mfn as number) * 4096, NETIF_RX_ENTRY_SIZE);
    this.ctx.mem.u8.set(this.link.guestMac, this.tx.base + NETIF_INFO_MAC);
    this.kick();
  }

  private disconnect(): void {
    for (const h of this.handles) this.grants.unmapGrant(h);
    this.handles.length = 0;
    this.tx = null;
    this.rx = null;
  }

  /** The front end notified: transmit everything queued on the TX ring. */
  kick(): void {
    const ring = this.tx;
    if (ring === null) return;
    for (;;) {
      let batch = 0;
      while (ring.unconsumedRequests() > 0) batch += this.transmitOne(ring);
      if (batch > 1) this.counters.txBatches++;
      if (batch > this.counters.maxTxBatch) this.counters.maxTxBatch = batch;
      if (ring.broken) { this.ctx.countRejected('netback-ring-overflow'); return; }
      if (!ring.finalCheckForRequests()) return;
    }
  }

  /**
   * One packet: its first request (size = the whole packet) and, with NETTXF_more_data, the
   * following fragments. Each request gets a response. Returns the requests taken.
   */
  private transmitOne(ring: BackRing): number {
    let taken = 0, len = 0, total = -1, ok = true;
    for (;;) {
      if (ring.unconsumedRequests() === 0) { ok = false; this.ctx.countRejected('netback-truncated-packet'); break; }
      ring.takeRequest(this.req);
      taken++;
      this.counters.txRequests++;
      const dv = new DataView(this.req.buffer);
      const gref = dv.getUint32(NETIF_TX_REQ.GREF, true), offset = dv.getUint16(NETIF_TX_REQ.OFFSET, true);
      const flags = dv.getUint16(NETIF_TX_REQ.FLAGS, true), id = dv.getUint16(NETIF_TX_REQ.ID, true);
      let size = dv.getUint16(NETIF_TX_REQ.SIZE, true);
      this.ctx.charge('device', this.costs.perRequest + this.costs.dom0NetTx);
      if (total < 0) total = size;
      const more = (flags & NETTXF.more_data) !== 0;
      // The first request's size is the whole packet; its own fragment is what the others leave.
      if (taken === 1 && more) size = this.firstFragmentSize(ring, size);
      let status: number = NETIF_RSP.OKAY;
      if ((flags & NETTXF.extra_info) !== 0) { status = NETIF_RSP.ERROR; this.ctx.countRejected('netback-extra-info'); }
      else if (size < 0 || offset + size > 4096 || len + size > total) { status = NETIF_RSP.ERROR; this.ctx.countRejected('netback-bad-fragment'); }
      else if (ok) {
        const m = this.grants.mapGrant(gref, 0 as DomId, true);
        if (m.status !== 0) { status = NETIF_RSP.ERROR; this.ctx.countRejected('netback-bad-grant'); }
        else {
          const at = (m.mfn as number) * 4096 + offset;
          this.frame.set(this.ctx.mem.u8.subarray(at, at + size), len);
          len += size;
          this.grants.unmapGrant(m.handle);
        }
      }
      if (status !== NETIF_RSP.OKAY) ok = false;
      this.txRespond(ring, id, status);
      if (!more) break;
    }
    if (ok && len === total && len >= 14) {
      let n = len;
      if (n < MIN_FRAME) { this.frame.fill(0, n, MIN_FRAME); n = MIN_FRAME; }
      this.ctx.charge('device', Math.round(n * this.costs.dmaPerByte));
      this.counters.txFrames++;
      this.link.transmit(this.frame.subarray(0, n));
    } else {
      this.counters.txErrors++;
    }
    return taken;
  }

  /** Size of the first fragment of a multi-request packet: the total minus the later fragments' sizes. */
  private firstFragmentSize(ring: BackRing, total: number): number {
    let rest = 0;
    const avail = ring.unconsumedRequests();
    for (let i = 0; i < avail; i++) {
      const a = ring.entryAddr(ring.reqCons + i);
      rest += this.ctx.mem.read16(a + NETIF_TX_REQ.SIZE);
      if ((this.ctx.mem.read16(a + NETIF_TX_REQ.FLAGS) & NETTXF.more_data) === 0) break;
    }
    return total - rest;
  }

  private txRespond(ring: BackRing, id: number, status: number): void {
    const dv = new DataView(this.rsp.buffer);
    dv.setUint16(NETIF_TX_RSP.ID, id, true);
    dv.setInt16(NETIF_TX_RSP.STATUS, status, true);
    this.ctx.mem.u8.set(this.rsp.subarray(0, NETIF_TX_RSP.BYTES), ring.entryAddr(ring.rspProdPvt));
    ring.rspProdPvt = (ring.rspProdPvt + 1) >>> 0;
    this.notifyIf(ring.pushResponsesAndCheckNotify());
  }

  /** A frame from the wire (NetPort): into the next posted RX buffer, or dropped. */
  receive(frame: Uint8Array): void {
    const ring = this.rx;
    if (ring === null || frame.length < 14 || frame.length > MAX_RX_FRAME || !this.accepts(frame)) { this.counters.rxDropped++; return; }
    if (ring.unconsumedRequests() === 0) { this.counters.rxDropped++; this.counters.rxNoBuffer++; return; }
    ring.takeRequest(this.req);
    const dv = new DataView(this.req.buffer);
    const id = dv.getUint16(NETIF_RX_REQ.ID, true), gref = dv.getUint32(NETIF_RX_REQ.GREF, true);
    this.ctx.charge('device', this.costs.perRequest + this.costs.dom0NetRx);
    let status: number;
    const m = this.grants.mapGrant(gref, 0 as DomId, false);
    if (m.status !== 0) {
      status = NETIF_RSP.ERROR;
      this.counters.rxErrors++;
      this.counters.rxDropped++;
      this.ctx.countRejected('netback-bad-grant');
    } else {
      this.ctx.mem.u8.set(frame, (m.mfn as number) * 4096);
      this.grants.unmapGrant(m.handle);
      this.ctx.charge('device', Math.round(frame.length * this.costs.dmaPerByte));
      this.counters.rxFrames++;
      status = frame.length;
    }
    const r = new DataView(this.rsp.buffer);
    r.setUint16(NETIF_RX_RSP.ID, id, true);
    r.setUint16(NETIF_RX_RSP.OFFSET, 0, true);
    r.setUint16(NETIF_RX_RSP.FLAGS, 0, true);
    r.setInt16(NETIF_RX_RSP.STATUS, status, true);
    this.ctx.mem.u8.set(this.rsp.subarray(0, NETIF_RX_RSP.BYTES), ring.entryAddr(ring.rspProdPvt));
    ring.rspProdPvt = (ring.rspProdPvt + 1) >>> 0;
    this.notifyIf(ring.pushResponsesAndCheckNotify());
  }

  /** The e1000's filter as the kernel programs it: own MAC, broadcast (BAM); no multicast. */
  private accepts(f: Uint8Array): boolean {
    let bcast = true;
    for (let i = 0; i < 6; i++) if (f[i] !== 0xff) bcast = false;
    if (bcast) return true;
    if ((f[0]! & 1) !== 0) return false;
    const mac = this.link.guestMac;
    for (let i = 0; i < 6; i++) if (f[i] !== mac[i]) return false;
    return true;
  }

  private notifyIf(notify: boolean): void {
    if (notify) {
      this.counters.notifications++;
      this.events.notifyFromDom0(this.port);
    } else {
      this.counters.suppressed++;
    }
  }
}

/**
 * Makes `backend` the receiver of `link`'s arrivals in place of the e1000 the machine attached
 * (NetLink has no public way to swap its port and `attach` would start its generators a second
 * time): the e1000 instance's `receive` is redirected. Returns a function that undoes it.
 */
export function redirectLinkReceiver(nic: NetPort, backend: NetPort): () => void {
  const own = Object.prototype.hasOwnProperty.call(nic, 'receive') ? nic.receive : undefined;
  (nic as { receive: (f: Uint8Array) => void }).receive = (f: Uint8Array) => backend.receive(f);
  return () => {
    if (own === undefined) delete (nic as { receive?: unknown }).receive;
    else (nic as { receive: (f: Uint8Array) => void }).receive = own;
  };
}
