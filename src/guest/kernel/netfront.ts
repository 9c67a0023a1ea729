/**
 * netfront: the kernel's paravirtual network driver for the `pv` mode (Xen's netif protocol,
 * xen/include/public/io/netif.h and ring.h, i386 layout). It replaces the e1000 driver under
 * the generic net layer (`net_xmit_fn`, `net_rx_fn`, `net_irq_fn`, drivers.ts).
 *
 * Transmit: the frame is copied to one granted page and queued as one netif_tx_request
 * (the back end transmits it during the notification, so the page is free again when the
 * send returns; if the back end has not taken it, the driver notifies unconditionally).
 * Receive: 7 page buffers stay posted on the RX ring — the same 7 free receive descriptors
 * the e1000 driver leaves (8 descriptors, RDT = 7), so a burst overflows at the same depth;
 * a buffer is reposted after its frame is copied out. Its grants are kept for the driver's
 * lifetime (Linux's netfront grants per buffer; a simplification, docs/pv.md).
 */
import { ax, eax, ebx, ecx, edi, edx, esi, byte, dword, word, type Label } from '../../x86/operands.js';
import { GTF } from '../../vmm/pv/grant-table.js';
import { NETIF_INFO_MAC, NETIF_RX_RING_REF, NETIF_TX_RING_REF } from '../../vmm/pv/netback.js';
import { NETIF_RX_REQ, NETIF_RX_RSP, NETIF_TX_REQ, NET_RX_RING_SIZE, NET_TX_RING_SIZE, SRING } from '../../vmm/pv/ring.js';
import { NETBACK_PORT } from '../../vmm/pv/split-backends.js';
import { CHAN_NET, type Kx } from './kernel.js';

const PAGE = 4096;
/** Receive buffers kept posted (as the e1000 driver's free descriptors). */
export const NETFRONT_RX_BUFFERS = 7;
/** Grant references: the transmit page, then the receive pages. */
export const NETFRONT_TX_REF = 9, NETFRONT_RX_REF0 = 10;

/** Emits `netfront_init` (called by `xen_front_init`), `netfront_xmit`, `netfront_rx`, `netfront_irq`, data. */
export function emitNetfront(k: Kx): void {
  const { a, L, print } = k;
  const tx = L('netif_tx_ring'), rx = L('netif_rx_ring');
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };
  /** Queues receive buffer `esi` (its id) at rx_prod, advancing it (no push). Clobbers eax, edx. */
  const postRx = (): void => {
    a.mov(eax, dword(L('netfront_rx_prod')));
    a.and(eax, NET_RX_RING_SIZE - 1);
    a.lea(edx, dword({ index: eax, scale: 8, disp: rx.plus(SRING.RING) }));
    a.mov(dword(edx, NETIF_RX_REQ.ID), esi); // id, and pad = 0 (esi < 65536)
    a.lea(eax, dword(esi, NETFRONT_RX_REF0));
    a.mov(dword(edx, NETIF_RX_REQ.GREF), eax);
    a.inc(dword(L('netfront_rx_prod')));
  };
  const push = (ring: Label, prod: string): void => {
    a.mov(eax, ring); a.mov(edx, dword(L(prod))); a.mov(ecx, dword(L('netfront_port')));
    a.call(L('xen_push_notify'));
  };

  fn('netfront_init', () => {
    const absent = a.label();
    a.push(esi);
    for (const r of [tx, rx]) {
      a.mov(dword(r.plus(SRING.REQ_EVENT)), 1);
      a.mov(dword(r.plus(SRING.RSP_EVENT)), 1);
    }
    a.mov(eax, NETIF_TX_RING_REF); a.mov(edx, tx); a.mov(ecx, GTF.permit_access); a.call(L('xen_grant'));
    a.mov(eax, NETIF_RX_RING_REF); a.mov(edx, rx); a.mov(ecx, GTF.permit_access); a.call(L('xen_grant'));
    a.mov(eax, NETBACK_PORT); a.call(L('xen_bind_backend'));
    a.test(eax, eax); a.jle(absent);
    a.mov(dword(L('netfront_port')), eax);
    a.mov(byte({ base: eax, disp: L('xen_evtchn_irq') }), 11 + 1); // the upcall runs IRQ 11's handler for this port
    // The MAC the back end published (xenstore's "mac" in Xen).
    a.mov(eax, dword(tx.plus(NETIF_INFO_MAC))); a.mov(dword(L('net_mac')), eax);
    a.mov(ax, word(tx.plus(NETIF_INFO_MAC + 4))); a.mov(word(L('net_mac').plus(4)), ax);
    a.mov(eax, NETFRONT_TX_REF); a.mov(edx, L('netfront_tx_page')); a.mov(ecx, GTF.permit_access | GTF.readonly); a.call(L('xen_grant'));
    a.xor(esi, esi);
    const post = a.here();
    a.lea(eax, dword(esi, NETFRONT_RX_REF0));
    a.mov(edx, esi); a.shl(edx, 12); a.add(edx, L('netfront_rx_pages'));
    a.mov(ecx, GTF.permit_access);
    a.call(L('xen_grant'));
    postRx();
    a.inc(esi); a.cmp(esi, NETFRONT_RX_BUFFERS); a.jb(post);
    push(rx, 'netfront_rx_prod');
    a.mov(dword(L('net_xmit_fn')), L('netfront_xmit'));
    a.mov(dword(L('net_rx_fn')), L('netfront_rx'));
    a.mov(dword(L('net_irq_fn')), L('netfront_irq'));
    print('netfront: mac ');
    a.call(L('net_print_mac'));
    a.pop(esi);
    a.ret();
    a.bind(absent);
    a.mov(eax, NETIF_TX_RING_REF); a.call(L('xen_end_grant'));
    a.mov(eax, NETIF_RX_RING_REF); a.call(L('xen_end_grant'));
    a.pop(esi);
    a.ret();
  });

  // netfront_xmit(eax = frame (kernel virtual), edx = len) → len.
  fn('netfront_xmit', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(esi, eax); a.mov(ebx, edx);
    a.mov(edi, L('netfront_tx_page'));
    a.mov(ecx, ebx); a.movsb('rep');
    a.mov(eax, dword(L('netfront_tx_prod')));
    a.and(eax, NET_TX_RING_SIZE - 1);
    a.imul(eax, eax, NETIF_TX_REQ.BYTES);
    a.lea(edx, dword({ base: eax, disp: tx.plus(SRING.RING) }));
    a.mov(dword(edx, NETIF_TX_REQ.GREF), NETFRONT_TX_REF);
    a.mov(dword(edx, NETIF_TX_REQ.OFFSET), 0); // offset 0, flags 0
    a.mov(eax, ebx); a.shl(eax, 16); // id 0, size = len
    a.mov(dword(edx, NETIF_TX_REQ.ID), eax);
    a.inc(dword(L('netfront_tx_prod')));
    push(tx, 'netfront_tx_prod');
    // Transmit responses need no work (the page is reused); take them all.
    const done = a.label();
    a.mov(eax, dword(tx.plus(SRING.RSP_PROD)));
    a.mov(dword(L('netfront_tx_cons')), eax);
    a.cmp(eax, dword(L('netfront_tx_prod'))); a.je(done);
    a.mov(eax, dword(L('netfront_port'))); a.call(L('xen_evtchn_send')); // not taken yet: kick
    a.bind(done);
    a.mov(eax, ebx);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });

  // netfront_rx(eax = buffer) → length of the frame copied there, or 0 when none is waiting.
  fn('netfront_rx', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(edi, eax);
    const again = a.here(), have = a.label(), none = a.label(), out = a.label();
    a.mov(ebx, dword(L('netfront_rx_cons')));
    a.cmp(ebx, dword(rx.plus(SRING.RSP_PROD))); a.jne(have);
    // RING_FINAL_CHECK_FOR_RESPONSES: ask to be notified at the next one, look once more.
    a.lea(eax, dword(ebx, 1)); a.mov(dword(rx.plus(SRING.RSP_EVENT)), eax);
    a.cmp(ebx, dword(rx.plus(SRING.RSP_PROD))); a.je(none);
    a.bind(have);
    a.mov(eax, ebx); a.and(eax, NET_RX_RING_SIZE - 1);
    a.lea(edx, dword({ index: eax, scale: 8, disp: rx.plus(SRING.RING) }));
    a.movzx(esi, word(edx, NETIF_RX_RSP.ID));
    a.movsx(ecx, word(edx, NETIF_RX_RSP.STATUS));
    a.inc(ebx); a.mov(dword(L('netfront_rx_cons')), ebx);
    const bad = a.label();
    a.cmp(esi, NETFRONT_RX_BUFFERS); a.jae(again); // not one of ours: ignore it
    a.test(ecx, ecx); a.jle(bad); // an error, or empty: drop, repost
    a.push(ecx); a.push(esi);
    a.shl(esi, 12); a.add(esi, L('netfront_rx_pages'));
    a.movsb('rep');
    a.pop(esi);
    postRx();
    push(rx, 'netfront_rx_prod');
    a.pop(eax);
    a.jmp(out);
    a.bind(bad);
    postRx();
    push(rx, 'netfront_rx_prod');
    a.jmp(again);
    a.bind(none);
    a.xor(eax, eax);
    a.bind(out);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });

  fn('netfront_irq', () => {
    a.mov(eax, CHAN_NET);
    a.jmp(L('wakeup'));
  });

  a.section('data');
  a.align(4);
  for (const v of ['netfront_port', 'netfront_tx_prod', 'netfront_tx_cons', 'netfront_rx_prod', 'netfront_rx_cons']) { a.bind(L(v)); a.dd(0); }
  a.section('bss');
  a.align(PAGE);
  a.bind(tx); a.reserve(PAGE);
  a.bind(rx); a.reserve(PAGE);
  a.bind(L('netfront_tx_page')); a.reserve(PAGE);
  a.bind(L('netfront_rx_pages')); a.reserve(NETFRONT_RX_BUFFERS * PAGE);
  a.section('text');
}
