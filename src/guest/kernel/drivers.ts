/**
 * The kernel's I/O: a generic block layer and net layer (system calls, bounce buffers,
 * waiting), and the emulated-device drivers under them: ATA disk with PIIX bus-master DMA
 * and the e1000 NIC through its I/O window (docs/devices.md). The layers meet at function
 * pointers (`blk_submit_fn`, `blk_irq_fn`, `net_xmit_fn`, `net_rx_fn`, `net_irq_fn`) so that
 * a paravirtual front end (shared rings, grants, event channels) can replace a driver
 * without touching the system calls: the logical I/O stays the same.
 */
import { al, ax, cx, eax, ebx, ecx, edi, edx, esi, byte, dword, word, type Label } from '../../x86/operands.js';
import { DOMID_SELF, EVTCHNOP, HYPERVISOR_event_channel_op } from '../../vmm/pv/event-channel.js';
import { GNTTABOP, HYPERVISOR_grant_table_op } from '../../vmm/pv/grant-table.js';
import { emitBlkfront } from './blkfront.js';
import { CHAN_DISK, CHAN_DISK_FREE, CHAN_NET, type Kx } from './kernel.js';
import { EFAULT, EINVAL, EIO, ENODEV, KERNEL_VIRT, SYS } from './layout.js';
import { emitNetfront } from './netfront.js';

const PAGE = 4096;
const ATA = 0x1f0, ATA_CTL = 0x3f6, BM = 0xc040;
const E1K = 0xc000;
const R = { CTRL: 0, STATUS: 8, EERD: 0x14, ICR: 0xc0, IMS: 0xd0, RCTL: 0x100, TCTL: 0x400, RDBAL: 0x2800, RDBAH: 0x2804, RDLEN: 0x2808, RDH: 0x2810, RDT: 0x2818, TDBAL: 0x3800, TDBAH: 0x3804, TDLEN: 0x3808, TDH: 0x3810, TDT: 0x3818, RAL0: 0x5400, RAH0: 0x5404 };
const NDESC = 8, RXBUF = 2048;

/** Emits the block and net layers, the two drivers, `drivers_init` and their system calls. */
export function emitDrivers(k: Kx, sysFn: (nr: number, name: string, body: () => void) => void): void {
  const { a, L, outb, inb, outl, inl, print } = k;
  const ax_ = (): typeof ax => ax;
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };

  fn('drivers_init', () => {
    // Paravirtualized (the pv boot stored start_info): the split-driver front ends, no probing.
    const native = a.label(), pv = a.label();
    a.cmp(dword(L('xen_si')), 0); a.jne(pv);
    a.cmp(dword(L('xen_front_force')), 0); a.je(native);
    a.bind(pv);
    a.call(L('xen_front_init'));
    a.ret();
    a.bind(native);
    // PCI bus mastering (and I/O decoding) for the IDE function (00:01.1) and the e1000
    // (00:03.0), where QEMU's pc machine has them; virtlab has no PCI configuration space,
    // so there these accesses go nowhere.
    for (const dev of [(1 << 11) | (1 << 8), 3 << 11]) {
      a.mov(eax, (0x8000_0000 | dev | 4) >>> 0); outl(0xcf8);
      inl(0xcfc);
      a.or(eax, 5); // I/O space, bus master
      outl(0xcfc);
    }
    a.call(L('ata_init'));
    a.call(L('e1000_init'));
    a.ret();
  });

  // ------------------------------------------------------------------ block layer
  // blk_rw(eax = op (0 read, 1 write), edx = lba, ecx = count), user buffer in blk_user.
  const blkCall = (write: number) => (): void => {
    a.push(ebx); a.push(esi); a.push(edi);
    a.mov(ebx, eax); // lba
    a.mov(esi, edx); // user buffer
    a.mov(edi, ecx); // count
    const inval = a.label(), nodev = a.label(), out = a.label(), fault = a.label();
    a.cmp(dword(L('blk_submit_fn')), 0); a.je(nodev);
    a.lea(eax, dword(edi, -1)); a.cmp(eax, 7); a.ja(inval);
    a.mov(eax, edi); a.shl(eax, 9); a.add(eax, esi); a.jc(fault);
    a.cmp(eax, KERNEL_VIRT); a.ja(fault);
    const wait = a.here(), free = a.label();
    a.cmp(dword(L('blk_busy')), 0); a.je(free);
    a.mov(eax, CHAN_DISK_FREE); a.call(L('sleep_on'));
    a.jmp(wait);
    a.bind(free);
    a.mov(dword(L('blk_busy')), 1);
    if (write) {
      a.push(esi); a.push(edi);
      a.mov(ecx, edi); a.shl(ecx, 7);
      a.mov(edi, L('blk_buf'));
      a.movsd('rep');
      a.pop(edi); a.pop(esi);
    }
    a.mov(dword(L('blk_done')), 0);
    a.mov(eax, write); a.mov(edx, ebx); a.mov(ecx, edi);
    a.call(dword(L('blk_submit_fn')));
    const sleep = a.here(), done = a.label();
    a.cmp(dword(L('blk_done')), 0); a.jne(done);
    a.mov(eax, CHAN_DISK); a.call(L('sleep_on'));
    a.jmp(sleep);
    a.bind(done);
    const failed = a.label();
    a.cmp(dword(L('blk_result')), 0); a.jne(failed);
    if (!write) {
      a.push(esi); a.push(edi);
      a.mov(ecx, edi); a.shl(ecx, 7);
      a.mov(edi, esi);
      a.mov(esi, L('blk_buf'));
      a.movsd('rep');
      a.pop(edi); a.pop(esi);
    }
    a.mov(eax, edi);
    a.push(eax);
    a.jmp(L(write ? 'blk_w_release' : 'blk_r_release'));
    a.bind(failed);
    a.push(dword(L('blk_result')));
    a.bind(L(write ? 'blk_w_release' : 'blk_r_release'));
    a.mov(dword(L('blk_busy')), 0);
    a.mov(eax, CHAN_DISK_FREE); a.call(L('wakeup'));
    a.pop(eax);
    a.jmp(out);
    a.bind(nodev); a.mov(eax, -ENODEV); a.jmp(out);
    a.bind(fault); a.mov(eax, -EFAULT); a.jmp(out);
    a.bind(inval); a.mov(eax, -EINVAL);
    a.bind(out);
    a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  };
  sysFn(SYS.blk_read, 'sys_blk_read', blkCall(0));
  sysFn(SYS.blk_write, 'sys_blk_write', blkCall(1));
  // blk_complete(eax = 0 or -EIO): called by a driver when the request ends.
  fn('blk_complete', () => {
    a.mov(dword(L('blk_result')), eax);
    a.mov(dword(L('blk_done')), 1);
    a.mov(eax, CHAN_DISK);
    a.jmp(L('wakeup'));
  });

  // ------------------------------------------------------------------ ATA driver
  fn('ata_init', () => {
    const absent = a.label();
    a.mov(al, 0xe0); outb(ATA + 6); // select the master
    inb(ATA + 7);
    a.cmp(al, 0xff); a.je(absent);
    a.test(al, 0x40); a.jz(absent); // DRDY: a drive is there
    a.mov(al, 0); outb(ATA_CTL); // interrupts on (nIEN = 0)
    a.mov(dword(L('blk_submit_fn')), L('ata_submit'));
    a.mov(dword(L('blk_irq_fn')), L('ata_irq'));
    // The PRD table: one entry, the bounce buffer; the byte count is set per request.
    a.mov(eax, L('blk_buf')); a.sub(eax, KERNEL_VIRT);
    a.mov(dword(L('ata_prd')), eax);
    print('ata0: disk, bus-master DMA\n');
    a.bind(absent);
    a.ret();
  });
  // ata_submit(eax = op, edx = lba, ecx = count): READ DMA / WRITE DMA into/from blk_buf.
  fn('ata_submit', () => {
    a.push(ebx); a.push(esi);
    a.mov(ebx, edx); a.mov(esi, eax);
    a.push(ecx);
    a.mov(eax, ecx); a.shl(eax, 9); a.or(eax, 0x8000_0000);
    a.mov(dword(L('ata_prd').plus(4)), eax);
    a.mov(al, 0); outb(BM); // stop the engine
    a.mov(al, 6); outb(BM + 2); // clear interrupt and error
    a.mov(eax, L('ata_prd')); a.sub(eax, KERNEL_VIRT);
    outl(BM + 4);
    a.mov(eax, ebx); a.shr(eax, 24); a.and(al, 0x0f); a.or(al, 0xe0); outb(ATA + 6); // LBA, master
    a.pop(eax); outb(ATA + 2); // count
    a.mov(eax, ebx); outb(ATA + 3);
    a.shr(eax, 8); outb(ATA + 4);
    a.shr(eax, 8); outb(ATA + 5);
    const wr = a.label(), go = a.label();
    a.test(esi, esi); a.jnz(wr);
    a.mov(al, 0xc8); outb(ATA + 7); // READ DMA
    a.mov(al, 0x09); outb(BM); // start, write to memory
    a.jmp(go);
    a.bind(wr);
    a.mov(al, 0xca); outb(ATA + 7); // WRITE DMA
    a.mov(al, 0x01); outb(BM); // start, read from memory
    a.bind(go);
    a.pop(esi); a.pop(ebx);
    a.ret();
  });
  // ata_irq(): acknowledges, stops the engine, completes the request.
  fn('ata_irq', () => {
    a.push(ebx);
    inb(ATA + 7); // status: acknowledges INTRQ
    a.movzx(ebx, al);
    inb(BM + 2);
    a.push(eax);
    outb(BM + 2); // write-1-to-clear interrupt / error, keep the capability bits
    a.mov(al, 0); outb(BM);
    a.pop(eax);
    const bad = a.label(), done = a.label();
    a.test(al, 2); a.jnz(bad);
    a.test(ebx, 1); a.jnz(bad);
    a.xor(eax, eax); a.jmp(done);
    a.bind(bad);
    a.mov(eax, -EIO);
    a.bind(done);
    a.call(L('blk_complete'));
    a.pop(ebx);
    a.ret();
  });

  // ------------------------------------------------------------------ net layer
  // net_send(buf, len)
  sysFn(SYS.net_send, 'sys_net_send', () => {
    a.push(esi); a.push(edi);
    a.mov(ecx, edx); a.mov(edx, eax); // edx = buf, ecx = len
    const inval = a.label(), nodev = a.label(), fault = a.label(), out = a.label();
    a.cmp(dword(L('net_xmit_fn')), 0); a.je(nodev);
    a.cmp(ecx, 14); a.jb(inval);
    a.cmp(ecx, 1514); a.ja(inval);
    a.mov(eax, edx); a.add(eax, ecx); a.jc(fault);
    a.cmp(eax, KERNEL_VIRT); a.ja(fault);
    a.push(ecx);
    a.mov(esi, edx); a.mov(edi, L('net_txbuf'));
    a.movsb('rep');
    // Source MAC: the NIC's own.
    a.mov(eax, dword(L('net_mac'))); a.mov(dword(L('net_txbuf').plus(6)), eax);
    a.mov(ax_(), word(L('net_mac').plus(4))); a.mov(word(L('net_txbuf').plus(10)), ax_());
    a.pop(edx);
    a.mov(eax, L('net_txbuf'));
    a.call(dword(L('net_xmit_fn')));
    a.jmp(out);
    a.bind(nodev); a.mov(eax, -ENODEV); a.jmp(out);
    a.bind(fault); a.mov(eax, -EFAULT); a.jmp(out);
    a.bind(inval); a.mov(eax, -EINVAL);
    a.bind(out);
    a.pop(edi); a.pop(esi);
    a.ret();
  });
  // net_recv(buf, maxlen): blocks until a frame is there.
  sysFn(SYS.net_recv, 'sys_net_recv', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(ecx, edx); a.mov(edx, eax); // edx = buf, ecx = maxlen
    const nodev = a.label(), fault = a.label(), out = a.label();
    a.cmp(dword(L('net_rx_fn')), 0); a.je(nodev);
    a.mov(edi, edx); a.mov(ebx, ecx);
    a.mov(eax, edx); a.add(eax, ecx); a.jc(fault);
    a.cmp(eax, KERNEL_VIRT); a.ja(fault);
    const again = a.here(), got = a.label();
    a.mov(eax, L('net_rxbuf'));
    a.call(dword(L('net_rx_fn')));
    a.test(eax, eax); a.jnz(got);
    a.mov(eax, CHAN_NET); a.call(L('sleep_on'));
    a.jmp(again);
    a.bind(got);
    a.cmp(eax, ebx); const fits = a.label(); a.jbe(fits); a.mov(eax, ebx); a.bind(fits);
    a.mov(ecx, eax);
    a.mov(esi, L('net_rxbuf'));
    a.movsb('rep');
    a.jmp(out);
    a.bind(nodev); a.mov(eax, -ENODEV); a.jmp(out);
    a.bind(fault); a.mov(eax, -EFAULT);
    a.bind(out);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });

  // ------------------------------------------------------------------ e1000 driver
  // e1000_wr(ecx = register, eax = value); e1000_rd(ecx = register) → eax. Through IOADDR/IODATA.
  fn('e1000_wr', () => {
    a.push(eax);
    a.mov(eax, ecx); outl(E1K);
    a.pop(eax); outl(E1K + 4);
    a.ret();
  });
  fn('e1000_rd', () => {
    a.mov(eax, ecx); outl(E1K);
    inl(E1K + 4);
    a.ret();
  });
  const wr = (reg: number, v: number | { physOf: Label }): void => {
    a.mov(ecx, reg);
    if (typeof v === 'number') a.mov(eax, v);
    else { a.mov(eax, v.physOf); a.sub(eax, KERNEL_VIRT); }
    a.call(L('e1000_wr'));
  };
  fn('e1000_init', () => {
    const absent = a.label();
    a.mov(ecx, R.STATUS); a.call(L('e1000_rd'));
    a.cmp(eax, -1); a.je(absent); // nothing decodes the window
    a.test(al, 2); a.jz(absent); // STATUS.LU clear: no device (or no usable window)
    wr(R.CTRL, 1 << 26); // reset
    // The MAC from EEPROM words 0..2 through EERD, then into the receive address filter.
    for (let w = 0; w < 3; w++) {
      wr(R.EERD, (w << 8) | 1);
      a.push(ebx);
      a.mov(ebx, 1000); // a bounded wait, as drivers do
      const poll = a.here(), got = a.label();
      a.mov(ecx, R.EERD); a.call(L('e1000_rd'));
      a.test(al, 0x10); a.jnz(got);
      a.dec(ebx); a.jnz(poll);
      a.pop(ebx);
      print('e1000: EEPROM read timed out\n');
      a.jmp(absent);
      a.bind(got);
      a.pop(ebx);
      a.shr(eax, 16);
      a.mov(word(L('net_mac').plus(2 * w)), ax_());
    }
    a.mov(ecx, R.RAL0); a.mov(eax, dword(L('net_mac'))); a.call(L('e1000_wr'));
    a.mov(ecx, R.RAH0); a.movzx(eax, word(L('net_mac').plus(4))); a.or(eax, 0x8000_0000); a.call(L('e1000_wr'));
    // Receive descriptors: buffer addresses.
    a.xor(ecx, ecx);
    const fill = a.here();
    a.mov(eax, ecx); a.shl(eax, 11); a.add(eax, L('rx_bufs')); a.sub(eax, KERNEL_VIRT);
    a.mov(edx, ecx); a.shl(edx, 4);
    a.mov(dword({ base: edx, disp: L('rx_ring') }), eax);
    a.inc(ecx); a.cmp(ecx, NDESC); a.jb(fill);
    wr(R.TDBAL, { physOf: L('tx_ring') }); wr(R.TDBAH, 0); wr(R.TDLEN, NDESC * 16); wr(R.TDH, 0); wr(R.TDT, 0);
    wr(R.TCTL, (1 << 1) | (1 << 3)); // EN, PSP
    wr(R.RDBAL, { physOf: L('rx_ring') }); wr(R.RDBAH, 0); wr(R.RDLEN, NDESC * 16); wr(R.RDH, 0); wr(R.RDT, NDESC - 1);
    wr(R.RCTL, (1 << 1) | (1 << 15) | (1 << 26)); // EN, BAM, SECRC; 2048-byte buffers
    wr(R.IMS, 0x80); // RXT0
    a.mov(dword(L('net_xmit_fn')), L('e1000_xmit'));
    a.mov(dword(L('net_rx_fn')), L('e1000_rx'));
    a.mov(dword(L('net_irq_fn')), L('e1000_irq'));
    print('e1000: mac ');
    a.call(L('net_print_mac'));
    a.bind(absent);
    a.ret();
  });
  // net_print_mac(): prints net_mac as xx:xx:xx:xx:xx:xx and a newline.
  fn('net_print_mac', () => {
    a.push(ebx);
    a.xor(ebx, ebx);
    const mac = a.here();
    a.movzx(eax, byte({ base: ebx, disp: L('net_mac') }));
    a.mov(ecx, eax); a.shr(eax, 4);
    a.mov(al, byte({ base: eax, disp: L('hexdigits') })); a.call(L('kputc'));
    a.and(ecx, 15);
    a.mov(al, byte({ base: ecx, disp: L('hexdigits') })); a.call(L('kputc'));
    a.inc(ebx);
    a.cmp(ebx, 6); const last = a.label(); a.je(last);
    a.mov(al, 0x3a); a.call(L('kputc'));
    a.jmp(mac);
    a.bind(last);
    a.pop(ebx);
    a.mov(al, 10); a.call(L('kputc'));
    a.ret();
  });
  // e1000_xmit(eax = frame (kernel virtual), edx = len) → len. Transmission completes at the
  // TDT write (the model is synchronous), so a slot is free again when its DD bit is set.
  fn('e1000_xmit', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(esi, eax); a.mov(ebx, edx);
    a.mov(eax, dword(L('tx_next')));
    a.mov(edi, eax); a.shl(edi, 11); a.add(edi, L('tx_bufs'));
    a.push(edi);
    a.mov(ecx, ebx); a.movsb('rep');
    a.pop(edi);
    a.sub(edi, KERNEL_VIRT);
    a.mov(edx, eax); a.shl(edx, 4); a.add(edx, L('tx_ring'));
    a.mov(dword(edx), edi);
    a.mov(dword(edx, 4), 0);
    a.mov(dword(edx, 8), ebx); // length; CSO 0
    a.mov(byte(edx, 11), 0x0b); // CMD: EOP, IFCS, RS
    a.mov(dword(edx, 12), 0);
    a.inc(eax); a.and(eax, NDESC - 1);
    a.mov(dword(L('tx_next')), eax);
    a.mov(ecx, R.TDT); a.call(L('e1000_wr'));
    a.mov(eax, ebx);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });
  // e1000_rx(eax = buffer) → length of the frame copied there, or 0 when none is waiting.
  fn('e1000_rx', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(edi, eax);
    a.mov(ebx, dword(L('rx_next')));
    a.mov(edx, ebx); a.shl(edx, 4); a.add(edx, L('rx_ring'));
    const none = a.label(), out = a.label();
    a.test(byte(edx, 12), 1); a.jz(none); // DD
    a.movzx(ecx, word(edx, 8));
    a.push(ecx);
    a.mov(esi, ebx); a.shl(esi, 11); a.add(esi, L('rx_bufs'));
    a.movsb('rep');
    a.mov(dword(edx, 12), 0);
    a.mov(eax, ebx); // give the descriptor back
    a.mov(ecx, R.RDT); a.call(L('e1000_wr'));
    a.inc(ebx); a.and(ebx, NDESC - 1);
    a.mov(dword(L('rx_next')), ebx);
    a.pop(eax);
    a.jmp(out);
    a.bind(none);
    a.xor(eax, eax);
    a.bind(out);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });
  fn('e1000_irq', () => {
    a.mov(ecx, R.ICR); a.call(L('e1000_rd')); // read-to-clear
    a.mov(eax, CHAN_NET);
    a.jmp(L('wakeup'));
  });

  emitXenFront(k);

  // ------------------------------------------------------------------ driver data
  a.section('data');
  a.align(4);
  for (const v of ['blk_submit_fn', 'blk_busy', 'blk_done', 'blk_result', 'net_xmit_fn', 'net_rx_fn', 'tx_next', 'rx_next']) { a.bind(L(v)); a.dd(0); }
  a.bind(L('net_mac')); a.dd(0, 0);
  a.section('bss');
  a.align(PAGE);
  a.bind(L('blk_buf')); a.reserve(PAGE);
  a.bind(L('ata_prd')); a.reserve(8);
  a.align(16);
  a.bind(L('tx_ring')); a.reserve(NDESC * 16);
  a.bind(L('rx_ring')); a.reserve(NDESC * 16);
  a.bind(L('net_txbuf')); a.reserve(2048);
  a.bind(L('net_rxbuf')); a.reserve(2048);
  a.align(PAGE);
  a.bind(L('tx_bufs')); a.reserve(NDESC * RXBUF);
  a.bind(L('rx_bufs')); a.reserve(NDESC * RXBUF);
  a.section('text');
}

/**
 * What the paravirtual front ends share (docs/pv.md, "Event channels, grant tables, split
 * drivers"): the P2M lookup, the grant table, event-channel hypercalls and the ring push.
 * In a Xen domain (`xen_si` set by `xen_start`, pv-xen.ts) `drivers_init` runs
 * `xen_front_init` instead of probing the ATA disk and the e1000; each front end binds its
 * back end's channel and enters its port in `xen_evtchn_irq` (pv-xen.ts) with the IRQ its
 * emulated counterpart uses (14 disk, 11 net), so the upcall runs `blk_irq_fn` / `net_irq_fn`
 * through the kernel's `irq` handler (entered at `irq_noeoi`: no PIC EOI), as the device
 * interrupt would. `xen_front_force` (data
 * word) brings the front ends up without a Xen boot: a test hook (test/vmm/pv-frontend-harness.ts).
 * Hypercalls: `int 0x82`, EAX = number, arguments in EBX, ECX, EDX (issue 5, item 1).
 */
function emitXenFront(k: Kx): void {
  const { a, L, print } = k;
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };
  const hypercall = (nr: number, b: number | Label, c: number | Label, d?: number | Label): void => {
    a.push(ebx);
    a.mov(eax, nr); a.mov(ebx, b); a.mov(ecx, c);
    if (d !== undefined) a.mov(edx, d);
    a.int(0x82);
    a.pop(ebx);
  };
  const gnttab = L('xen_gnttab'), evArg = L('xen_evtchn_arg'), gtArg = L('xen_gnttab_arg');

  // xen_virt_to_mfn(eax = direct-map address) → eax = machine frame (the kernel's copy of the P2M, `xen_p2m`).
  fn('xen_virt_to_mfn', () => {
    a.sub(eax, KERNEL_VIRT); a.shr(eax, 12);
    a.mov(eax, dword({ index: eax, scale: 4, disp: L('xen_p2m') }));
    a.ret();
  });
  // xen_grant(eax = ref, edx = page (kernel virtual), ecx = flags): grants the page to domain 0.
  // The flags are written last: the entry is valid only once complete (Xen's wmb before flags).
  fn('xen_grant', () => {
    a.push(ebx); a.push(ecx);
    a.mov(ebx, eax);
    a.mov(eax, edx); a.call(L('xen_virt_to_mfn'));
    a.mov(dword({ index: ebx, scale: 8, disp: gnttab.plus(4) }), eax);
    a.mov(word({ index: ebx, scale: 8, disp: gnttab.plus(2) }), 0);
    a.pop(ecx);
    a.mov(word({ index: ebx, scale: 8, disp: gnttab }), cx);
    a.pop(ebx);
    a.ret();
  });
  // xen_end_grant(eax = ref): revokes (the back ends unmap before they answer).
  fn('xen_end_grant', () => {
    a.mov(word({ index: eax, scale: 8, disp: gnttab }), 0);
    a.ret();
  });
  // xen_evtchn_send(eax = port).
  fn('xen_evtchn_send', () => {
    a.mov(dword(evArg), eax);
    hypercall(HYPERVISOR_event_channel_op, EVTCHNOP.send, evArg);
    a.ret();
  });
  // xen_bind_backend(eax = back end's domain-0 port) → eax = local port, or -errno.
  fn('xen_bind_backend', () => {
    a.mov(dword(evArg), 0); // remote_dom 0
    a.mov(dword(evArg.plus(4)), eax);
    a.mov(dword(evArg.plus(8)), 0);
    hypercall(HYPERVISOR_event_channel_op, EVTCHNOP.bind_interdomain, evArg);
    const out = a.label();
    a.test(eax, eax); a.jnz(out);
    a.mov(eax, dword(evArg.plus(8)));
    a.bind(out);
    a.ret();
  });
  // xen_push_notify(eax = shared ring, edx = new req_prod, ecx = port):
  // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, and EVTCHNOP_send when the back end asked for it.
  fn('xen_push_notify', () => {
    a.push(ebx); a.push(esi);
    a.mov(esi, eax);
    a.mov(ebx, edx); a.sub(ebx, dword(esi)); // new - old
    a.mov(dword(esi), edx); // req_prod = new
    a.sub(edx, dword(esi, 4)); // new - req_event
    const no = a.label();
    a.cmp(edx, ebx); a.jae(no);
    a.mov(eax, ecx); a.call(L('xen_evtchn_send'));
    a.bind(no);
    a.pop(esi); a.pop(ebx);
    a.ret();
  });
  // xen_front_init(): the grant table (one frame), then the front ends.
  fn('xen_front_init', () => {
    const fail = a.label();
    a.mov(eax, gnttab); a.call(L('xen_virt_to_mfn'));
    a.mov(dword(L('xen_gnttab_frame')), eax);
    // GNTTABOP_setup_table { dom DOMID_SELF, nr_frames 1, status, frame_list } (virtlab: frame_list is read).
    a.mov(dword(gtArg), DOMID_SELF);
    a.mov(dword(gtArg.plus(4)), 1);
    a.mov(dword(gtArg.plus(8)), 0);
    a.mov(dword(gtArg.plus(12)), L('xen_gnttab_frame'));
    hypercall(HYPERVISOR_grant_table_op, GNTTABOP.setup_table, gtArg, 1);
    a.test(eax, eax); a.jnz(fail);
    a.cmp(word(gtArg.plus(8)), 0); a.jne(fail);
    a.call(L('blkfront_init'));
    a.call(L('netfront_init'));
    a.ret();
    a.bind(fail);
    print('xen: grant table setup failed\n');
    a.ret();
  });
  emitBlkfront(k);
  emitNetfront(k);

  a.section('data');
  a.align(4);
  for (const v of ['xen_front_force', 'xen_gnttab_frame']) { a.bind(L(v)); a.dd(0); }
  a.bind(evArg); a.reserve(24);
  a.bind(gtArg); a.reserve(32);
  a.section('bss');
  a.align(4096);
  a.bind(gnttab); a.reserve(4096);
  a.section('text');
}
