/**
 * Shared I/O rings with the layout and index discipline of Xen's xen/include/public/io/ring.h,
 * and the request/response formats of blkif (io/blkif.h) and netif (io/netif.h) as a 32-bit
 * x86 guest lays them out (natural i386 alignment: 64-bit fields on 4-byte boundaries — the
 * layout Linux's blkback calls `blkif_x86_32_request`).
 *
 * The shared ring page (`struct __name##_sring`):
 *
 * | offset | field |
 * |---|---|
 * | 0 | req_prod |
 * | 4 | req_event |
 * | 8 | rsp_prod |
 * | 12 | rsp_event |
 * | 16 | pvt (4 bytes), then __pad[44] |
 * | 64 | ring[]: entries, each the union of the request and response structures |
 *
 * Indices are free-running 32-bit counters; entry i is at `ring[i & (size - 1)]`, size the
 * number of entries that fit, rounded down to a power of two (__CONST_RING_SIZE). Notification
 * hold-off: a producer notifies only if the consumer's event index lies in the batch it just
 * pushed (RING_PUSH_*_AND_CHECK_NOTIFY); a consumer about to sleep sets the event index to
 * one past what it consumed and checks again (RING_FINAL_CHECK_FOR_*).
 *
 * Everything here reads and writes one page of `PhysicalMemory` at a machine address; every
 * offset is masked into the page, so indices chosen by a hostile peer cannot reach outside it.
 */
import type { PhysicalMemory } from '../../machine/memory.js';

export const SRING = { REQ_PROD: 0, REQ_EVENT: 4, RSP_PROD: 8, RSP_EVENT: 12, PVT: 16, PAD: 20, RING: 64 } as const;
/** Bytes of `__pad` (ring.h). */
export const SRING_PAD_BYTES = 44;

/** __RD32: rounds down to a power of two. */
export function roundDownPow2(x: number): number {
  if (x <= 0) return 0;
  return 2 ** Math.floor(Math.log2(x));
}

/** __CONST_RING_SIZE for a 4 KiB page and an entry (union of request and response) of `entryBytes`. */
export function ringSize(entryBytes: number, pageBytes = 4096): number {
  return roundDownPow2(Math.floor((pageBytes - SRING.RING) / entryBytes));
}

const u32 = (x: number): number => x >>> 0;

/** SHARED_RING_INIT: indices 0, event indices 1, pads zero. */
export function sharedRingInit(mem: PhysicalMemory, base: number): void {
  mem.write32(base + SRING.REQ_PROD, 0);
  mem.write32(base + SRING.RSP_PROD, 0);
  mem.write32(base + SRING.REQ_EVENT, 1);
  mem.write32(base + SRING.RSP_EVENT, 1);
  mem.u8.fill(0, base + SRING.PVT, base + SRING.RING);
}

/** The back end's private half of a ring (`__name##_back_ring`). */
export class BackRing {
  rspProdPvt = 0;
  reqCons = 0;
  readonly size: number;
  /** Set when the front end published an impossible producer index (RING_REQUEST_PROD_OVERFLOW). */
  broken = false;

  /** `base`: machine address of the (page-aligned) shared ring page. */
  constructor(readonly mem: PhysicalMemory, readonly base: number, readonly entryBytes: number) {
    if (base % 4096 !== 0 || base < 0 || base + 4096 > mem.size) throw new RangeError(`ring page at 0x${base.toString(16)} is not a page of memory`);
    this.size = ringSize(entryBytes);
  }

  get reqProd(): number { return u32(this.mem.read32(this.base + SRING.REQ_PROD)); }

  /**
   * Requests published and not yet taken (XEN_RING_NR_UNCONSUMED_REQUESTS: no more than the
   * free response slots). A producer index more than a ring ahead of the responses given is
   * a misbehaving front end: the ring is marked broken and yields nothing from then on (as
   * Linux's blkback halts a ring on RING_REQUEST_PROD_OVERFLOW).
   */
  unconsumedRequests(): number {
    if (this.broken) return 0;
    const prod = this.reqProd;
    if (u32(prod - this.rspProdPvt) > this.size) { this.broken = true; return 0; }
    const req = u32(prod - this.reqCons);
    const rsp = this.size - u32(this.reqCons - this.rspProdPvt);
    return req < rsp ? req : rsp;
  }

  /** Machine address of ring entry `idx` (masked: always inside the page). */
  entryAddr(idx: number): number {
    return this.base + SRING.RING + (idx & (this.size - 1)) * this.entryBytes;
  }

  /** Copies request `reqCons` into `dst` (RING_COPY_REQUEST: the front end cannot change it under us) and advances. */
  takeRequest(dst: Uint8Array): void {
    const a = this.entryAddr(this.reqCons);
    dst.set(this.mem.u8.subarray(a, a + this.entryBytes));
    this.reqCons = u32(this.reqCons + 1);
  }

  /** Writes a response into the next private slot (rsp_prod_pvt). */
  putResponse(src: Uint8Array): void {
    const a = this.entryAddr(this.rspProdPvt);
    this.mem.u8.set(src.subarray(0, this.entryBytes), a);
    this.rspProdPvt = u32(this.rspProdPvt + 1);
  }

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publishes; true if the front end asked to be told. */
  pushResponsesAndCheckNotify(): boolean {
    const old = u32(this.mem.read32(this.base + SRING.RSP_PROD));
    const nu = this.rspProdPvt;
    this.mem.write32(this.base + SRING.RSP_PROD, nu);
    const ev = u32(this.mem.read32(this.base + SRING.RSP_EVENT));
    return u32(nu - ev) < u32(nu - old);
  }

  /**
   * RING_FINAL_CHECK_FOR_REQUESTS: if nothing is waiting, sets req_event = req_cons + 1 (tell
   * me at the next request) and checks once more. True when there is work.
   */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() > 0) return true;
    if (this.broken) return false;
    this.mem.write32(this.base + SRING.REQ_EVENT, u32(this.reqCons + 1));
    return this.unconsumedRequests() > 0;
  }
}

/** The front end's private half (`__name##_front_ring`): used by tests acting as a front end. */
export class FrontRing {
  reqProdPvt = 0;
  rspCons = 0;
  readonly size: number;

  constructor(readonly mem: PhysicalMemory, readonly base: number, readonly entryBytes: number) {
    this.size = ringSize(entryBytes);
  }

  get freeRequests(): number { return this.size - u32(this.reqProdPvt - this.rspCons); }
  entryAddr(idx: number): number { return this.base + SRING.RING + (idx & (this.size - 1)) * this.entryBytes; }

  putRequest(src: Uint8Array): void {
    this.mem.u8.set(src.subarray(0, this.entryBytes), this.entryAddr(this.reqProdPvt));
    this.reqProdPvt = u32(this.reqProdPvt + 1);
  }

  /** RING_PUSH_REQUESTS_AND_CHECK_NOTIFY. */
  pushRequestsAndCheckNotify(): boolean {
    const old = u32(this.mem.read32(this.base + SRING.REQ_PROD));
    const nu = this.reqProdPvt;
    this.mem.write32(this.base + SRING.REQ_PROD, nu);
    const ev = u32(this.mem.read32(this.base + SRING.REQ_EVENT));
    return u32(nu - ev) < u32(nu - old);
  }

  unconsumedResponses(): number { return u32(u32(this.mem.read32(this.base + SRING.RSP_PROD)) - this.rspCons); }

  takeResponse(dst: Uint8Array): void {
    const a = this.entryAddr(this.rspCons);
    dst.set(this.mem.u8.subarray(a, a + this.entryBytes));
    this.rspCons = u32(this.rspCons + 1);
  }

  /** RING_FINAL_CHECK_FOR_RESPONSES. */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() > 0) return true;
    this.mem.write32(this.base + SRING.RSP_EVENT, u32(this.rspCons + 1));
    return this.unconsumedResponses() > 0;
  }
}

// ---------------------------------------------------------------------------- blkif (i386)

/** blkif operations and statuses (io/blkif.h). */
export const BLKIF_OP = { READ: 0, WRITE: 1, WRITE_BARRIER: 2, FLUSH_DISKCACHE: 3, DISCARD: 5, INDIRECT: 6 } as const;
export const BLKIF_RSP = { OKAY: 0, ERROR: -1, EOPNOTSUPP: -2 } as const;
export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
/**
 * `struct blkif_request` on i386: operation u8 @0, nr_segments u8 @1, handle u16 @2, id u64 @4,
 * sector_number u64 @12, seg[11] @20, each {gref u32, first_sect u8, last_sect u8, 2 pad} = 8.
 */
export const BLKIF_REQ = { OPERATION: 0, NR_SEGMENTS: 1, HANDLE: 2, ID: 4, SECTOR: 12, SEG: 20, SEG_SIZE: 8, SEG_GREF: 0, SEG_FIRST: 4, SEG_LAST: 5, SIZE: 108 } as const;
/** `struct blkif_response` on i386: id u64 @0, operation u8 @8, status i16 @10; 12 bytes. */
export const BLKIF_RSP_LAYOUT = { ID: 0, OPERATION: 8, STATUS: 10, SIZE: 12 } as const;
/** Bytes of one blkif ring entry (the union: the request is the larger). */
export const BLKIF_ENTRY_SIZE = BLKIF_REQ.SIZE;
/** 32 on i386. */
export const BLK_RING_SIZE = ringSize(BLKIF_ENTRY_SIZE);

// ---------------------------------------------------------------------------- netif (i386)

/** netif_tx_request: gref u32 @0, offset u16 @4, flags u16 @6, id u16 @8, size u16 @10; 12 bytes. */
export const NETIF_TX_REQ = { GREF: 0, OFFSET: 4, FLAGS: 6, ID: 8, SIZE: 10, BYTES: 12 } as const;
/** netif_tx_response: id u16 @0, status i16 @2; 4 bytes. */
export const NETIF_TX_RSP = { ID: 0, STATUS: 2, BYTES: 4 } as const;
/** netif_rx_request: id u16 @0, pad u16, gref u32 @4; 8 bytes. */
export const NETIF_RX_REQ = { ID: 0, GREF: 4, BYTES: 8 } as const;
/** netif_rx_response: id u16 @0, offset u16 @2, flags u16 @4, status i16 @6 (length, or < 0 an error); 8 bytes. */
export const NETIF_RX_RSP = { ID: 0, OFFSET: 2, FLAGS: 4, STATUS: 6, BYTES: 8 } as const;
/** NETTXF_* / NETRXF_* flags and NETIF_RSP_* statuses (io/netif.h). */
export const NETTXF = { csum_blank: 1, data_validated: 2, more_data: 4, extra_info: 8 } as const;
export const NETRXF = { data_validated: 1, csum_blank: 2, more_data: 4, extra_info: 8 } as const;
export const NETIF_RSP = { DROPPED: -2, ERROR: -1, OKAY: 0, NULL: 1 } as const;
/** Entry sizes (union of request and response) and ring sizes: 256 each on i386. */
export const NETIF_TX_ENTRY_SIZE = 12;
export const NETIF_RX_ENTRY_SIZE = 8;
export const NET_TX_RING_SIZE = ringSize(NETIF_TX_ENTRY_SIZE);
export const NET_RX_RING_SIZE = ringSize(NETIF_RX_ENTRY_SIZE);
