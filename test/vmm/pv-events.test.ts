/**
 * Event channels of the pv model (2-level ABI, event_channel_op) against a fake domain:
 * the shared_info bits Xen's ABI specifies, the upcall, domain-0 back-end channels, VIRQs,
 * and hostile arguments answered with Xen's error codes without touching anything else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { XEN_ERRNO } from '../../src/vmm/pv/domain-context.js';
import { DOMID_SELF, EVTCHNOP, EVTCHNSTAT, EventChannels, NR_VIRQS, VIRQ, isPending } from '../../src/vmm/pv/event-channel.js';
import { SHARED_INFO, VCPU_INFO } from '../../src/vmm/pv/shared-info.js';
import { SHARED_INFO_MFN, fakeContext, poke } from './pv-fake-context.js';

const ARG = 0x5000; // guest VA (= PA) of the argument structure
const SI = SHARED_INFO_MFN * 4096;
const COSTS = { eventChannelSend: 250 };

function setup() {
  const ctx = fakeContext(1);
  const ev = new EventChannels(ctx, COSTS);
  const mem = ctx.mem;
  const op = (cmd: number, fields: readonly [number, 1 | 2 | 4, number][], size = 24): number => {
    mem.u8.fill(0, ARG, ARG + size);
    poke(mem, ARG, fields);
    return ev.hypercall(cmd, ARG);
  };
  const u32 = (off: number): number => mem.read32(ARG + off) >>> 0;
  const sel = (): number => mem.read32(SI + VCPU_INFO.EVTCHN_PENDING_SEL) >>> 0;
  const setMask = (port: number): void => { const a = SI + SHARED_INFO.EVTCHN_MASK + (port >>> 5) * 4; mem.write32(a, mem.read32(a) | (1 << (port & 31))); };
  const allocUnbound = (remote: number): number => { expect(op(EVTCHNOP.alloc_unbound, [[0, 2, DOMID_SELF], [2, 2, remote]])).toBe(0); return u32(4); };
  return { ctx, ev, mem, op, u32, sel, setMask, allocUnbound };
}

describe('shared_info layout (xen.h, 32-bit x86)', () => {
  it('puts the bitmaps after 32 vcpu_info slots of 64 bytes', () => {
    expect(SHARED_INFO.EVTCHN_PENDING).toBe(2048);
    expect(SHARED_INFO.EVTCHN_MASK).toBe(2048 + 128);
    expect(SHARED_INFO.WC_VERSION).toBe(2048 + 256);
    expect(VCPU_INFO.EVTCHN_PENDING_SEL).toBe(4);
  });
});

describe('event_channel_op', () => {
  it('loopback interdomain channel: send sets pending, the selector bit and raises one upcall', () => {
    const { ctx, op, u32, sel, mem, allocUnbound } = setup();
    const a = allocUnbound(DOMID_SELF);
    expect(a).toBe(1);
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, DOMID_SELF], [4, 4, a]])).toBe(0);
    const b = u32(8);
    expect(b).toBe(2);
    expect(op(EVTCHNOP.send, [[0, 4, b]])).toBe(0);
    expect(isPending(mem, SHARED_INFO_MFN, a)).toBe(true);
    expect(isPending(mem, SHARED_INFO_MFN, b)).toBe(false);
    expect(sel()).toBe(1);
    expect(ctx.upcalls).toBe(1);
    expect(mem.u8[SI + VCPU_INFO.EVTCHN_UPCALL_PENDING]).toBe(1);
    // Coalesced: already pending, no second upcall.
    expect(op(EVTCHNOP.send, [[0, 4, b]])).toBe(0);
    expect(ctx.upcalls).toBe(1);
    expect(ctx.charges.get('hypercall:event_channel_op')).toEqual({ cycles: 500, count: 2 });
    // status of both ends
    expect(op(EVTCHNOP.status, [[0, 2, DOMID_SELF], [4, 4, a]])).toBe(0);
    expect(u32(8)).toBe(EVTCHNSTAT.interdomain);
    expect(mem.read16(ARG + 16)).toBe(1);
    expect(u32(20)).toBe(b);
  });

  it('a masked port gets the pending bit but no selector bit or upcall until unmasked', () => {
    const { ctx, op, u32, sel, setMask, mem } = setup();
    expect(op(EVTCHNOP.bind_ipi, [[0, 4, 0]])).toBe(0);
    const p = u32(4);
    setMask(p);
    expect(op(EVTCHNOP.send, [[0, 4, p]])).toBe(0);
    expect(isPending(mem, SHARED_INFO_MFN, p)).toBe(true);
    expect(sel()).toBe(0);
    expect(ctx.upcalls).toBe(0);
    expect(op(EVTCHNOP.unmask, [[0, 4, p]])).toBe(0);
    expect(sel()).toBe(1 << (p >>> 5));
    expect(ctx.upcalls).toBe(1);
    // Unmasking an unmasked port changes nothing.
    expect(op(EVTCHNOP.unmask, [[0, 4, p]])).toBe(0);
    expect(ctx.upcalls).toBe(1);
  });

  it('selector bits are per 32-port word', () => {
    const { ev, sel, ctx } = setup();
    for (let i = 0; i < 40; i++) ev.bindIpi(0);
    ev.setPending(3);
    ev.setPending(35);
    expect(sel()).toBe(0b11);
    expect(ctx.upcalls).toBe(2);
  });

  it('VIRQ_TIMER binds once, fires through sendVirq, and its errors are Xen\'s', () => {
    const { ctx, ev, op, u32, mem } = setup();
    expect(ev.sendVirq(VIRQ.TIMER)).toBe(false);
    expect(op(EVTCHNOP.bind_virq, [[0, 4, VIRQ.TIMER], [4, 4, 0]])).toBe(0);
    const p = u32(8);
    expect(ev.virqBinding(VIRQ.TIMER)).toBe(p);
    expect(op(EVTCHNOP.bind_virq, [[0, 4, VIRQ.TIMER], [4, 4, 0]])).toBe(-XEN_ERRNO.EEXIST);
    expect(op(EVTCHNOP.bind_virq, [[0, 4, NR_VIRQS], [4, 4, 0]])).toBe(-XEN_ERRNO.EINVAL);
    expect(op(EVTCHNOP.bind_virq, [[0, 4, VIRQ.DEBUG], [4, 4, 1]])).toBe(-XEN_ERRNO.ENOENT);
    expect(ev.sendVirq(VIRQ.TIMER)).toBe(true);
    expect(isPending(mem, SHARED_INFO_MFN, p)).toBe(true);
    expect(ctx.charges.get('event')).toEqual({ cycles: 250, count: 1 });
    // A VIRQ port cannot be sent on; closing it unbinds the VIRQ.
    expect(op(EVTCHNOP.send, [[0, 4, p]])).toBe(-XEN_ERRNO.EINVAL);
    expect(op(EVTCHNOP.close, [[0, 4, p]])).toBe(0);
    expect(isPending(mem, SHARED_INFO_MFN, p)).toBe(false);
    expect(ev.sendVirq(VIRQ.TIMER)).toBe(false);
    expect(op(EVTCHNOP.status, [[0, 2, DOMID_SELF], [4, 4, p]])).toBe(0);
    expect(u32(8)).toBe(EVTCHNSTAT.closed);
  });

  it('domain-0 back-end channel: bind, events both ways, close and rebind', () => {
    const { ev, op, u32, mem } = setup();
    const seen: string[] = [];
    const d0 = ev.dom0Listen({ onBind: (p) => seen.push(`bind ${p}`), onEvent: () => seen.push('event'), onClose: () => seen.push('close') }, 1);
    expect(ev.notifyFromDom0(d0)).toBe(false); // not connected yet
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 0], [4, 4, d0]])).toBe(0);
    const g = u32(8);
    expect(seen).toEqual([`bind ${g}`]);
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 0], [4, 4, d0]])).toBe(-XEN_ERRNO.EINVAL); // already bound
    expect(op(EVTCHNOP.send, [[0, 4, g]])).toBe(0);
    expect(seen).toEqual([`bind ${g}`, 'event']);
    expect(ev.notifyFromDom0(d0)).toBe(true);
    expect(isPending(mem, SHARED_INFO_MFN, g)).toBe(true);
    expect(op(EVTCHNOP.close, [[0, 4, g]])).toBe(0);
    expect(seen.at(-1)).toBe('close');
    expect(ev.notifyFromDom0(d0)).toBe(false);
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 0], [4, 4, d0]])).toBe(0);
    expect(seen.at(-1)).toBe(`bind ${u32(8)}`);
  });

  it('a back end can bind to a port the guest allocated for domain 0', () => {
    const { ev, allocUnbound, op, u32 } = setup();
    const g = allocUnbound(0);
    let events = 0;
    const d = ev.dom0BindInterdomain(g, { onEvent: () => events++ });
    expect(d).toBeGreaterThan(0);
    expect(op(EVTCHNOP.send, [[0, 4, g]])).toBe(0);
    expect(events).toBe(1);
    expect(ev.guestPortOf(d)).toBe(g);
    // A port allocated for the guest itself is not domain 0's to take.
    const own = allocUnbound(DOMID_SELF);
    expect(ev.dom0BindInterdomain(own, { onEvent: () => undefined })).toBe(-XEN_ERRNO.EINVAL);
    expect(op(EVTCHNOP.status, [[0, 2, DOMID_SELF], [4, 4, own]])).toBe(0);
    expect(u32(8)).toBe(EVTCHNSTAT.unbound);
  });

  it('hostile arguments get Xen\'s error codes and are counted', () => {
    const { ctx, ev, op, allocUnbound } = setup();
    for (const port of [0, 5, 1023, 1024, 0xffff_ffff]) {
      expect(op(EVTCHNOP.send, [[0, 4, port]])).toBe(-XEN_ERRNO.EINVAL);
      expect(op(EVTCHNOP.close, [[0, 4, port]])).toBe(-XEN_ERRNO.EINVAL);
      expect(op(EVTCHNOP.unmask, [[0, 4, port]])).toBe(-XEN_ERRNO.EINVAL);
      expect(op(EVTCHNOP.bind_vcpu, [[0, 4, port], [4, 4, 0]])).toBe(-XEN_ERRNO.EINVAL);
    }
    expect(op(EVTCHNOP.status, [[0, 2, DOMID_SELF], [4, 4, 1024]])).toBe(-XEN_ERRNO.EINVAL);
    expect(op(EVTCHNOP.status, [[0, 2, 7], [4, 4, 1]])).toBe(-XEN_ERRNO.EPERM);
    expect(op(10, [])).toBe(-XEN_ERRNO.ENOSYS);
    expect(op(0xffff_ffff, [])).toBe(-XEN_ERRNO.ENOSYS);
    expect(ev.hypercall(EVTCHNOP.send, 0x7fff_fff0)).toBe(-XEN_ERRNO.EFAULT); // unmapped argument
    expect(op(EVTCHNOP.alloc_unbound, [[0, 2, 7], [2, 2, 0]])).toBe(-XEN_ERRNO.EPERM); // for another domain
    expect(op(EVTCHNOP.alloc_unbound, [[0, 2, DOMID_SELF], [2, 2, 9]])).toBe(-XEN_ERRNO.ESRCH); // no such domain
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 9], [4, 4, 1]])).toBe(-XEN_ERRNO.ESRCH);
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 0], [4, 4, 1]])).toBe(-XEN_ERRNO.EINVAL); // nothing listens there
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, 0], [4, 4, 0]])).toBe(-XEN_ERRNO.EINVAL);
    const toDom0 = allocUnbound(0); // open to domain 0, not to us
    expect(op(EVTCHNOP.bind_interdomain, [[0, 2, DOMID_SELF], [4, 4, toDom0]])).toBe(-XEN_ERRNO.EINVAL);
    expect(op(EVTCHNOP.bind_pirq, [[0, 4, 14], [4, 4, 0], [8, 4, 0]])).toBe(-XEN_ERRNO.EPERM);
    expect(op(EVTCHNOP.bind_ipi, [[0, 4, 3]])).toBe(-XEN_ERRNO.ENOENT);
    // Sending on an unbound port drops the notification silently, as Xen does.
    expect(op(EVTCHNOP.send, [[0, 4, toDom0]])).toBe(0);
    expect(ctx.upcalls).toBe(0);
    expect(ctx.rejected.get('evtchn-bad-port')).toBeGreaterThanOrEqual(20);
    expect(ev.counters.rejected).toBe([...ctx.rejected.values()].reduce((a, b) => a + b, 0));
  });

  it('runs out of ports with -ENOSPC after 1023', () => {
    const { ev } = setup();
    for (let i = 1; i < 1024; i++) expect(ev.bindIpi(0)).toBe(i);
    expect(ev.bindIpi(0)).toBe(-XEN_ERRNO.ENOSPC);
    expect(ev.close(500)).toBe(0);
    expect(ev.bindIpi(0)).toBe(500);
  });

  it('property: random hypercalls never throw and write only the bitmaps, the selector/upcall bytes and the argument', () => {
    const cmdArb = fc.oneof(fc.integer({ min: 0, max: 11 }), fc.constant(0xffff_ffff));
    const word = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0, 1, 2, 1023, 1024, 0x7ff0, 0xffff, 0xffff_ffff), fc.integer({ min: 0, max: 0xffff_ffff }));
    fc.assert(fc.property(fc.array(fc.tuple(cmdArb, fc.array(word, { minLength: 6, maxLength: 6 }), fc.boolean()), { maxLength: 60 }), (calls) => {
      const { ctx, ev, mem } = setup();
      ev.dom0Listen({ onEvent: () => undefined }, 1);
      const before = mem.u8.slice();
      for (const [cmd, w, badVa] of calls) {
        for (let i = 0; i < 6; i++) mem.write32(ARG + 4 * i, w[i]!);
        const rc = ev.hypercall(cmd, badVa ? 0x9000_0000 : ARG);
        expect(rc === 0 || (rc < 0 && Object.values(XEN_ERRNO).includes(-rc as never))).toBe(true);
        if ((w[0]! & 7) === 0) ev.sendVirq(w[1]! % 30);
        if ((w[0]! & 7) === 1) ev.notifyFromDom0(1);
      }
      const allowed = (a: number): boolean =>
        (a >= ARG && a < ARG + 24) ||
        (a >= SI + SHARED_INFO.EVTCHN_PENDING && a < SI + SHARED_INFO.EVTCHN_MASK + 128) ||
        (a >= SI && a < SI + 8);
      for (let a = 0; a < mem.size; a++) if (mem.u8[a] !== before[a] && !allowed(a)) throw new Error(`write outside the allowed areas at 0x${a.toString(16)}`);
      // The mask bitmap is the guest's: the hypervisor never writes it except to unmask.
      expect(ctx.upcalls).toBeGreaterThanOrEqual(0);
    }), { numRuns: 60 });
  });
});
