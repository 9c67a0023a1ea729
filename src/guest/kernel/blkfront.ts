/**
 * blkfront: the kernel's paravirtual block driver for the `pv` mode (Xen's blkif protocol,
 * xen/include/public/io/blkif.h and ring.h, i386 layout). It replaces the ATA driver under
 * the generic block layer (`blk_submit_fn`, `blk_irq_fn`, drivers.ts): each request of the
 * block layer (1..8 sectors through the page-aligned bounce buffer `blk_buf`) becomes one
 * blkif request with one segment whose frame is granted to domain 0 for the request's
 * duration (read-only for a write), so the disk sees exactly the requests the ATA driver
 * would have issued. Completion arrives as an event-channel notification, dispatched to
 * `blk_irq_fn` through the kernel's IRQ 14 path (`xen_evtchn_irq`, pv-xen.ts).
 */
import { al, eax, ebx, ecx, edi, edx, esi, byte, dword, word } from '../../x86/operands.js';
import { BLKIF_INFO_SECTORS, BLKIF_RING_REF } from '../../vmm/pv/blkback.js';
import { GTF } from '../../vmm/pv/grant-table.js';
import { BLKIF_REQ, BLKIF_RSP_LAYOUT, BLK_RING_SIZE, SRING } from '../../vmm/pv/ring.js';
import { BLKBACK_PORT } from '../../vmm/pv/split-backends.js';
import type { Kx } from './kernel.js';
import { EIO } from './layout.js';

const PAGE = 4096;
/** Grant reference of the data page (the first one after Xen's 8 reserved entries). */
export const BLKFRONT_DATA_REF = 8;

/**
 * Emits `blkfront_init` (called by `xen_front_init`), `blkfront_submit`, `blkfront_irq` and
 * their data. Uses drivers.ts's Xen helpers (`xen_grant`, `xen_end_grant`,
 * `xen_bind_backend`, `xen_push_notify`).
 */
export function emitBlkfront(k: Kx): void {
  const { a, L, print } = k;
  const ring = L('blkif_ring');
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };

  fn('blkfront_init', () => {
    const absent = a.label();
    // SHARED_RING_INIT (the page is zero: bss); the event indices start at 1.
    a.mov(dword(ring.plus(SRING.REQ_EVENT)), 1);
    a.mov(dword(ring.plus(SRING.RSP_EVENT)), 1);
    a.mov(eax, BLKIF_RING_REF); a.mov(edx, ring); a.mov(ecx, GTF.permit_access); a.call(L('xen_grant'));
    a.mov(eax, BLKBACK_PORT); a.call(L('xen_bind_backend'));
    a.test(eax, eax); a.jle(absent);
    a.mov(dword(L('blkfront_port')), eax);
    a.mov(byte({ base: eax, disp: L('xen_evtchn_irq') }), 14 + 1); // the upcall runs IRQ 14's handler for this port
    a.mov(dword(L('blk_submit_fn')), L('blkfront_submit'));
    a.mov(dword(L('blk_irq_fn')), L('blkfront_irq'));
    print('blkfront: disk, ');
    a.mov(eax, dword(ring.plus(BLKIF_INFO_SECTORS))); a.call(L('kputdec'));
    print(' sectors\n');
    a.ret();
    a.bind(absent);
    a.mov(eax, BLKIF_RING_REF); a.call(L('xen_end_grant'));
    a.ret();
  });

  // blkfront_submit(eax = op (0 read, 1 write: BLKIF_OP_READ / BLKIF_OP_WRITE), edx = lba, ecx = count).
  fn('blkfront_submit', () => {
    a.push(ebx); a.push(esi); a.push(edi);
    a.mov(esi, eax); a.mov(edi, edx); a.mov(ebx, ecx);
    // Grant the bounce buffer: the back end writes it for a read, only reads it for a write.
    const rw = a.label();
    a.mov(ecx, GTF.permit_access);
    a.test(esi, esi); a.jz(rw);
    a.or(ecx, GTF.readonly);
    a.bind(rw);
    a.mov(eax, BLKFRONT_DATA_REF); a.mov(edx, L('blk_buf')); a.call(L('xen_grant'));
    // The request, in slot req_prod_pvt & (size - 1).
    a.mov(eax, dword(L('blkfront_req_prod')));
    a.and(eax, BLK_RING_SIZE - 1);
    a.imul(eax, eax, BLKIF_REQ.SIZE);
    a.lea(edx, dword({ base: eax, disp: ring.plus(SRING.RING) }));
    a.mov(eax, esi); a.mov(byte(edx, BLKIF_REQ.OPERATION), al);
    a.mov(byte(edx, BLKIF_REQ.NR_SEGMENTS), 1);
    a.mov(word(edx, BLKIF_REQ.HANDLE), 0);
    a.mov(dword(edx, BLKIF_REQ.ID), 0);
    a.mov(dword(edx, BLKIF_REQ.ID + 4), 0);
    a.mov(dword(edx, BLKIF_REQ.SECTOR), edi);
    a.mov(dword(edx, BLKIF_REQ.SECTOR + 4), 0);
    a.mov(dword(edx, BLKIF_REQ.SEG + BLKIF_REQ.SEG_GREF), BLKFRONT_DATA_REF);
    a.mov(byte(edx, BLKIF_REQ.SEG + BLKIF_REQ.SEG_FIRST), 0);
    a.lea(eax, dword(ebx, -1));
    a.mov(byte(edx, BLKIF_REQ.SEG + BLKIF_REQ.SEG_LAST), al);
    a.inc(dword(L('blkfront_req_prod')));
    // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, then EVTCHNOP_send if asked.
    a.mov(eax, ring); a.mov(edx, dword(L('blkfront_req_prod'))); a.mov(ecx, dword(L('blkfront_port')));
    a.call(L('xen_push_notify'));
    a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // blkfront_irq(): takes the responses, completes the request; RING_FINAL_CHECK_FOR_RESPONSES.
  fn('blkfront_irq', () => {
    a.push(ebx);
    const loop = a.here(), check = a.label(), ok = a.label(), out = a.label();
    a.mov(ebx, dword(L('blkfront_rsp_cons')));
    a.cmp(ebx, dword(ring.plus(SRING.RSP_PROD))); a.je(check);
    a.mov(eax, ebx); a.and(eax, BLK_RING_SIZE - 1); a.imul(eax, eax, BLKIF_REQ.SIZE);
    a.movzx(eax, word({ base: eax, disp: ring.plus(SRING.RING + BLKIF_RSP_LAYOUT.STATUS) }));
    a.inc(ebx); a.mov(dword(L('blkfront_rsp_cons')), ebx);
    a.push(eax);
    a.mov(eax, BLKFRONT_DATA_REF); a.call(L('xen_end_grant'));
    a.pop(eax);
    a.test(eax, eax); a.jz(ok); // BLKIF_RSP_OKAY
    a.mov(eax, -EIO);
    a.bind(ok);
    a.call(L('blk_complete'));
    a.jmp(loop);
    a.bind(check);
    a.lea(eax, dword(ebx, 1)); a.mov(dword(ring.plus(SRING.RSP_EVENT)), eax);
    a.cmp(ebx, dword(ring.plus(SRING.RSP_PROD))); a.jne(loop);
    a.bind(out);
    a.pop(ebx);
    a.ret();
  });

  a.section('data');
  a.align(4);
  for (const v of ['blkfront_port', 'blkfront_req_prod', 'blkfront_rsp_cons']) { a.bind(L(v)); a.dd(0); }
  a.section('bss');
  a.align(PAGE);
  a.bind(ring); a.reserve(PAGE);
  a.section('text');
}
