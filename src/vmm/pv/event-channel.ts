/**
 * Event channels of the `pv` hypervisor model: Xen's `event_channel_op` (hypercall 32) with the
 * 2-level ABI (xen/include/public/event_channel.h; bitmaps in shared_info, see shared-info.ts).
 *
 * One paravirtualized domain (the guest, `ctx.domid`) and domain 0, which here is the
 * hypervisor model's own back ends (TypeScript, no shared_info page of its own): a back end
 * listens on a domain-0 port and is called when the guest sends on the interdomain channel;
 * it notifies the guest through `notifyFromDom0`. The timer (the pv lead's `set_timer_op`)
 * fires VIRQ_TIMER through `sendVirq`.
 *
 * Every port number, command and argument comes from the guest and is checked: an invalid
 * port or state gets Xen's error code (negated errno), never an exception or a write outside
 * the shared_info bitmaps.
 */
import { XEN_ERRNO, type DomId, type PvDomainContext } from './domain-context.js';
import { NR_EVENT_CHANNELS, SHARED_INFO, VCPU_INFO } from './shared-info.js';
import { mutant } from '../mutants.js';

/** Hypercall number of event_channel_op (xen/include/public/xen.h: __HYPERVISOR_event_channel_op). */
export const HYPERVISOR_event_channel_op = 32;

/** EVTCHNOP_* sub-commands (xen/include/public/event_channel.h). */
export const EVTCHNOP = {
  bind_interdomain: 0, bind_virq: 1, bind_pirq: 2, close: 3, send: 4, status: 5,
  alloc_unbound: 6, bind_ipi: 7, bind_vcpu: 8, unmask: 9,
} as const;

/** EVTCHNSTAT_* values returned by EVTCHNOP_status (event_channel.h). */
export const EVTCHNSTAT = { closed: 0, unbound: 1, interdomain: 2, pirq: 3, virq: 4, ipi: 5 } as const;

/** Virtual IRQs (xen.h VIRQ_*); NR_VIRQS is 24. */
export const VIRQ = { TIMER: 0, DEBUG: 1, CONSOLE: 2, DOM_EXC: 3 } as const;
export const NR_VIRQS = 24;
/** VIRQs bound per vCPU rather than per domain (xen.h: VIRQ_TIMER and VIRQ_DEBUG are per-vCPU). */
const PER_VCPU_VIRQ = (virq: number): boolean => virq === VIRQ.TIMER || virq === VIRQ.DEBUG;

/** DOMID_SELF (xen.h). */
export const DOMID_SELF = 0x7ff0;
/** Domain 0: the hypervisor model's back ends. */
export const DOM0 = 0 as DomId;

/** Sizes (bytes) of the i386 argument structures (event_channel.h; 4-byte alignment). */
export const EVTCHN_ARG_SIZE = {
  bind_interdomain: 12, bind_virq: 12, bind_pirq: 12, close: 4, send: 4, status: 24,
  alloc_unbound: 8, bind_ipi: 8, bind_vcpu: 8, unmask: 4,
} as const;

/** Channel states (Xen's ECS_*, xen/include/xen/event.h; internal). */
const enum Ecs { Free = 0, Reserved = 1, Unbound = 2, Interdomain = 3, Pirq = 4, Virq = 5, Ipi = 6 }

interface Channel {
  state: Ecs;
  /** Unbound: the domain allowed to bind; interdomain: the peer domain. */
  remoteDom: number;
  /** Interdomain: the peer's port. */
  remotePort: number;
  virq: number;
}

/** What a domain-0 back end is told about its channel. */
export interface Dom0Listener {
  /** The guest bound (EVTCHNOP_bind_interdomain) to this back end's port: its local port. */
  onBind?(guestPort: number): void;
  /** The guest sent on the channel (EVTCHNOP_send). */
  onEvent(): void;
  /** The guest closed its end. */
  onClose?(): void;
}

interface Dom0Port {
  state: 'unbound' | 'interdomain';
  /** Guest port when interdomain. */
  remotePort: number;
  listener: Dom0Listener;
}

/** Figures (cycles) the event channels charge, from the profile's `paravirtualization` section. */
export interface EventChannelCosts {
  /** EVTCHNOP_send beyond the hypercall itself (port lookup, pending bit, selector). */
  readonly eventChannelSend: number;
}

/** Monotonic counters, for the run record. */
export interface EventChannelCounters {
  /** EVTCHNOP_send by the guest that reached a channel. */
  guestSends: number;
  /** Notifications from domain 0 (back ends) and VIRQs. */
  hypervisorSends: number;
  /** Pending bits set 0 → 1. */
  pendingSet: number;
  /** Sends that found the port already pending (coalesced, as Xen does). */
  coalesced: number;
  /** Sends that found the port masked (no upcall). */
  masked: number;
  /** Upcalls raised (selector bit 0 → 1). */
  upcalls: number;
  /** Requests refused with an error code. */
  rejected: number;
  /** Binds to the well-known port of a back end the machine does not have (a front end's probe). */
  absentDevice: number;
}

/**
 * The event channels of one domain. `hypercall(cmd, argVa)` is what the hypercall dispatcher
 * calls for `event_channel_op`; the rest is the hypervisor's side (back ends, timer).
 */
export class EventChannels {
  readonly counters: EventChannelCounters = { guestSends: 0, hypervisorSends: 0, pendingSet: 0, coalesced: 0, masked: 0, upcalls: 0, rejected: 0, absentDevice: 0 };
  private readonly ports: Channel[] = [];
  private readonly dom0: (Dom0Port | undefined)[] = [];
  /** VIRQ → port (0: unbound). vCPU 0 only. */
  private readonly virqPort = new Int32Array(NR_VIRQS);
  /** Well-known domain-0 ports of back ends the machine lacks (see `dom0Absent`). */
  private readonly absent = new Set<number>();
  private readonly buf = new Uint8Array(24);
  private readonly view = new DataView(this.buf.buffer);
  /**
   * The event channels of the other pv domains on the same machine, by domain id
   * (`connectDomains`; src/verify/pv-pair.ts runs several domains): null when this domain
   * talks only to itself and domain 0.
   */
  private peers: ReadonlyMap<number, EventChannels> | null = null;

  constructor(private readonly ctx: PvDomainContext, private readonly costs: EventChannelCosts) {
    for (let p = 0; p < NR_EVENT_CHANNELS; p++) this.ports.push({ state: Ecs.Free, remoteDom: 0, remotePort: 0, virq: 0 });
    // Port 0 is never allocated (Xen reserves it: ECS_RESERVED).
    this.ports[0]!.state = Ecs.Reserved;
    this.dom0.push(undefined); // domain-0 port 0 is reserved too
  }

  // ------------------------------------------------------------------ the hypercall

  /**
   * event_channel_op(cmd, arg): reads the argument structure at guest virtual `argVa`,
   * performs the operation, writes the structure back (Xen copies the whole struct out).
   * Returns 0 or a negated Xen errno.
   */
  hypercall(cmd: number, argVa: number): number {
    const c = cmd >>> 0;
    let size: number;
    switch (c) {
      case EVTCHNOP.bind_interdomain: size = EVTCHN_ARG_SIZE.bind_interdomain; break;
      case EVTCHNOP.bind_virq: size = EVTCHN_ARG_SIZE.bind_virq; break;
      case EVTCHNOP.bind_pirq: size = EVTCHN_ARG_SIZE.bind_pirq; break;
      case EVTCHNOP.close: size = EVTCHN_ARG_SIZE.close; break;
      case EVTCHNOP.send: size = EVTCHN_ARG_SIZE.send; break;
      case EVTCHNOP.status: size = EVTCHN_ARG_SIZE.status; break;
      case EVTCHNOP.alloc_unbound: size = EVTCHN_ARG_SIZE.alloc_unbound; break;
      case EVTCHNOP.bind_ipi: size = EVTCHN_ARG_SIZE.bind_ipi; break;
      case EVTCHNOP.bind_vcpu: size = EVTCHN_ARG_SIZE.bind_vcpu; break;
      case EVTCHNOP.unmask: size = EVTCHN_ARG_SIZE.unmask; break;
      default: return this.reject('evtchn-bad-cmd', XEN_ERRNO.ENOSYS);
    }
    const arg = this.buf.subarray(0, size);
    if (!this.ctx.copyFromGuest(argVa >>> 0, arg)) return this.reject('evtchn-bad-arg-va', XEN_ERRNO.EFAULT);
    const v = this.view;
    let rc: number;
    let out = false;
    switch (c) {
      case EVTCHNOP.alloc_unbound: {
        rc = this.allocUnbound(v.getUint16(0, true), v.getUint16(2, true));
        if (rc >= 0) { v.setUint32(4, rc, true); rc = 0; out = true; }
        break;
      }
      case EVTCHNOP.bind_interdomain: {
        rc = this.bindInterdomain(v.getUint16(0, true), v.getUint32(4, true));
        if (rc >= 0) { v.setUint32(8, rc, true); rc = 0; out = true; }
        break;
      }
      case EVTCHNOP.bind_virq: {
        rc = this.bindVirq(v.getUint32(0, true), v.getUint32(4, true));
        if (rc >= 0) { v.setUint32(8, rc, true); rc = 0; out = true; }
        break;
      }
      case EVTCHNOP.bind_ipi: {
        rc = this.bindIpi(v.getUint32(0, true));
        if (rc >= 0) { v.setUint32(4, rc, true); rc = 0; out = true; }
        break;
      }
      case EVTCHNOP.bind_pirq:
        // A domain without physical-IRQ access (every domain here: the devices belong to the
        // hypervisor's back ends): Xen answers -EPERM (pirq_access_permitted fails).
        rc = this.reject('evtchn-bind-pirq', XEN_ERRNO.EPERM);
        break;
      case EVTCHNOP.close: rc = this.close(v.getUint32(0, true)); break;
      case EVTCHNOP.send: rc = this.send(v.getUint32(0, true)); break;
      case EVTCHNOP.unmask: rc = this.unmask(v.getUint32(0, true)); break;
      case EVTCHNOP.bind_vcpu: rc = this.bindVcpu(v.getUint32(0, true), v.getUint32(4, true)); break;
      default: { // status
        rc = this.status(v.getUint16(0, true), v.getUint32(4, true));
        out = rc === 0;
        break;
      }
    }
    if (out && !this.ctx.copyToGuest(argVa >>> 0, arg)) return this.reject('evtchn-bad-arg-va', XEN_ERRNO.EFAULT);
    return rc;
  }

  // ------------------------------------------------------------------ guest operations

  /** EVTCHNOP_alloc_unbound: a new port that `remoteDom` may bind to. Port or -errno. */
  allocUnbound(dom: number, remoteDom: number): number {
    if (!this.isSelf(dom)) return this.reject('evtchn-foreign-dom', XEN_ERRNO.EPERM);
    const rd = this.resolveDom(remoteDom);
    if (rd < 0) return this.reject('evtchn-bad-remote-dom', XEN_ERRNO.ESRCH);
    const p = this.freePort();
    if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
    const ch = this.ports[p]!;
    ch.state = Ecs.Unbound;
    ch.remoteDom = rd;
    return p;
  }

  /** EVTCHNOP_bind_interdomain: connects a new local port to `remotePort` of `remoteDom`. */
  bindInterdomain(remoteDom: number, remotePort: number): number {
    const rd = this.resolveDom(remoteDom);
    if (rd < 0) return this.reject('evtchn-bad-remote-dom', XEN_ERRNO.ESRCH);
    const self = this.ctx.domid as number;
    if (rd === self) {
      // Loopback: the remote port is ours, unbound and open to us.
      if (!this.valid(remotePort)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
      const r = this.ports[remotePort]!;
      if (r.state !== Ecs.Unbound || r.remoteDom !== self) return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
      const p = this.freePort();
      if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
      this.connectLocal(p, self, remotePort);
      r.state = Ecs.Interdomain; r.remoteDom = self; r.remotePort = p;
      return p;
    }
    if (rd !== 0) {
      // Another pv domain: its port must be unbound and open to us (Xen's evtchn_bind_interdomain).
      const peer = this.domain(rd);
      if (!peer.valid(remotePort)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
      const r = peer.ports[remotePort]!;
      if (r.state !== Ecs.Unbound || r.remoteDom !== self) return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
      const p = this.freePort();
      if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
      this.connectLocal(p, rd, remotePort);
      r.state = Ecs.Interdomain; r.remoteDom = self; r.remotePort = p;
      return p;
    }
    // Domain 0: one of the back ends' listening ports.
    const d = Number.isInteger(remotePort) && remotePort > 0 ? this.dom0[remotePort] : undefined;
    if (d === undefined) {
      // A front end looking for a device the machine does not have (the xenstore lookup that
      // would find nothing in Xen): refused, but not counted as hostile.
      if (this.absent.has(remotePort)) { this.counters.absentDevice++; return -XEN_ERRNO.EINVAL; }
      return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    }
    if (d.state !== 'unbound') return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
    const p = this.freePort();
    if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
    this.connectLocal(p, 0, remotePort);
    d.state = 'interdomain';
    d.remotePort = p;
    d.listener.onBind?.(p);
    return p;
  }

  /** EVTCHNOP_bind_virq (vCPU 0 only: the model has one vCPU). */
  bindVirq(virq: number, vcpu: number): number {
    if (virq >= NR_VIRQS) return this.reject('evtchn-bad-virq', XEN_ERRNO.EINVAL);
    if (vcpu !== 0) return this.reject('evtchn-bad-vcpu', XEN_ERRNO.ENOENT);
    if (this.virqPort[virq] !== 0) return this.reject('evtchn-virq-bound', XEN_ERRNO.EEXIST);
    const p = this.freePort();
    if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
    const ch = this.ports[p]!;
    ch.state = Ecs.Virq;
    ch.virq = virq;
    this.virqPort[virq] = p;
    return p;
  }

  /** EVTCHNOP_bind_ipi: a port that, sent on, notifies the same (only) vCPU. */
  bindIpi(vcpu: number): number {
    if (vcpu !== 0) return this.reject('evtchn-bad-vcpu', XEN_ERRNO.ENOENT);
    const p = this.freePort();
    if (p < 0) return this.reject('evtchn-no-port', XEN_ERRNO.ENOSPC);
    this.ports[p]!.state = Ecs.Ipi;
    return p;
  }

  /** EVTCHNOP_bind_vcpu: only vCPU 0 exists; valid for the port kinds Xen allows. */
  bindVcpu(port: number, vcpu: number): number {
    if (vcpu !== 0) return this.reject('evtchn-bad-vcpu', XEN_ERRNO.ENOENT);
    if (!this.valid(port)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const ch = this.ports[port]!;
    if (ch.state === Ecs.Virq && PER_VCPU_VIRQ(ch.virq)) return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
    if (ch.state !== Ecs.Virq && ch.state !== Ecs.Unbound && ch.state !== Ecs.Interdomain && ch.state !== Ecs.Pirq) return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
    return 0;
  }

  /** EVTCHNOP_close: frees the port; the peer's end goes back to unbound (as Xen's evtchn_close). */
  close(port: number): number {
    if (!this.valid(port)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const ch = this.ports[port]!;
    if (ch.state === Ecs.Virq) this.virqPort[ch.virq] = 0;
    if (ch.state === Ecs.Interdomain) {
      if (ch.remoteDom === 0) {
        const d = this.dom0[ch.remotePort]!;
        d.state = 'unbound';
        d.remotePort = 0;
        d.listener.onClose?.();
      } else {
        const r = this.domain(ch.remoteDom).ports[ch.remotePort]!;
        r.state = Ecs.Unbound;
        r.remotePort = 0;
      }
    }
    ch.state = Ecs.Free; ch.remoteDom = 0; ch.remotePort = 0; ch.virq = 0;
    this.clearPending(port);
    return 0;
  }

  /** EVTCHNOP_send. Unbound ports drop the notification silently (0), as Xen's evtchn_send. */
  send(port: number): number {
    if (!this.valid(port)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const ch = this.ports[port]!;
    switch (ch.state) {
      case Ecs.Interdomain:
        this.counters.guestSends++;
        this.ctx.charge('hypercall:event_channel_op', this.costs.eventChannelSend);
        if (ch.remoteDom === 0) this.dom0[ch.remotePort]!.listener.onEvent();
        else this.domain(mutant('pv-evtchn-wrong-domain') ? this.wrongDomain(ch.remoteDom) : ch.remoteDom).setPending(ch.remotePort);
        return 0;
      case Ecs.Ipi:
        this.counters.guestSends++;
        this.ctx.charge('hypercall:event_channel_op', this.costs.eventChannelSend);
        this.setPending(port);
        return 0;
      case Ecs.Unbound:
        if (mutant('pv-evtchn-send-unbound')) this.setPending(port);
        return 0;
      default:
        return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
    }
  }

  /** EVTCHNOP_unmask: clears the mask bit; a pending event then raises the upcall. */
  unmask(port: number): number {
    if (!this.valid(port)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const w = port >>> 5, bit = 1 << (port & 31);
    const maskAddr = this.siAddr(SHARED_INFO.EVTCHN_MASK + w * 4);
    const pendAddr = this.siAddr(SHARED_INFO.EVTCHN_PENDING + w * 4);
    const mem = this.ctx.mem;
    const mask = mem.read32(maskAddr);
    if ((mask & bit) === 0) return 0;
    mem.write32(maskAddr, mask & ~bit);
    if ((mem.read32(pendAddr) & bit) !== 0) this.markSelector(w);
    return 0;
  }

  /** EVTCHNOP_status. Fills the struct in the argument buffer; 0 or -errno. */
  private status(dom: number, port: number): number {
    if (!this.isSelf(dom)) return this.reject('evtchn-foreign-dom', XEN_ERRNO.EPERM);
    if (port >= NR_EVENT_CHANNELS) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const v = this.view;
    for (let i = 8; i < 24; i++) this.buf[i] = 0;
    const ch = this.ports[port]!;
    let st: number = EVTCHNSTAT.closed;
    switch (ch.state) {
      case Ecs.Unbound: st = EVTCHNSTAT.unbound; v.setUint16(16, ch.remoteDom, true); break;
      case Ecs.Interdomain: st = EVTCHNSTAT.interdomain; v.setUint16(16, ch.remoteDom, true); v.setUint32(20, ch.remotePort, true); break;
      case Ecs.Virq: st = EVTCHNSTAT.virq; v.setUint32(16, ch.virq, true); break;
      case Ecs.Ipi: st = EVTCHNSTAT.ipi; break;
      case Ecs.Pirq: st = EVTCHNSTAT.pirq; break;
      default: break;
    }
    v.setUint32(8, st, true);
    v.setUint32(12, 0, true); // vcpu
    return 0;
  }

  // ------------------------------------------------------------------ the hypervisor's side

  /**
   * A back end opens a domain-0 port, unbound, that the guest may bind to with
   * EVTCHNOP_bind_interdomain(remote_dom 0, port). `port`: a fixed, well-known number (the
   * back ends' simplified handshake, docs/pv.md); default the lowest free one. Returns it.
   */
  dom0Listen(listener: Dom0Listener, port?: number): number {
    let p = port ?? this.dom0.length;
    if (port === undefined) { while (this.dom0[p] !== undefined) p++; }
    if (!Number.isInteger(p) || p <= 0 || p >= NR_EVENT_CHANNELS) throw new RangeError(`domain-0 port ${p} is not in 1..${NR_EVENT_CHANNELS - 1}`);
    if (this.dom0[p] !== undefined) throw new RangeError(`domain-0 port ${p} is already in use`);
    while (this.dom0.length < p) this.dom0.push(undefined);
    this.dom0[p] = { state: 'unbound', remotePort: 0, listener };
    return p;
  }

  /**
   * Marks domain-0 port `port` as the well-known port of a back end this machine does not have:
   * binding to it fails (-EINVAL) without counting as a hostile request.
   */
  dom0Absent(port: number): void {
    this.absent.add(port);
  }

  /**
   * A back end binds to a port the guest allocated with EVTCHNOP_alloc_unbound(remote_dom 0)
   * (Xen's other direction of the handshake). Returns the domain-0 port, or -errno.
   */
  dom0BindInterdomain(guestPort: number, listener: Dom0Listener): number {
    if (!this.valid(guestPort)) return this.reject('evtchn-bad-port', XEN_ERRNO.EINVAL);
    const ch = this.ports[guestPort]!;
    if (ch.state !== Ecs.Unbound || ch.remoteDom !== 0) return this.reject('evtchn-bad-state', XEN_ERRNO.EINVAL);
    const d = this.dom0Listen(listener);
    this.dom0[d]!.state = 'interdomain';
    this.dom0[d]!.remotePort = guestPort;
    ch.state = Ecs.Interdomain;
    ch.remotePort = d;
    return d;
  }

  /** The guest port bound to domain-0 port `dom0Port`, or 0 when not connected. */
  guestPortOf(dom0Port: number): number {
    const d = this.dom0[dom0Port];
    return d !== undefined && d.state === 'interdomain' ? d.remotePort : 0;
  }

  /**
   * A back end notifies the guest over its channel (what a real back end does with
   * EVTCHNOP_send / notify_remote_via_irq). Returns false when the channel is not connected.
   */
  notifyFromDom0(dom0Port: number): boolean {
    const g = this.guestPortOf(dom0Port);
    if (g === 0) return false;
    this.counters.hypervisorSends++;
    this.ctx.charge('event', this.costs.eventChannelSend);
    this.setPending(g);
    return true;
  }

  /** Fires a VIRQ (the timer: VIRQ_TIMER). Returns false when the guest has not bound it. */
  sendVirq(virq: number): boolean {
    if (virq < 0 || virq >= NR_VIRQS) return false;
    const p = this.virqPort[virq]!;
    if (p === 0) return false;
    this.counters.hypervisorSends++;
    this.ctx.charge('event', this.costs.eventChannelSend);
    this.setPending(p);
    return true;
  }

  /** The port VIRQ `virq` is bound to (0: none). */
  virqBinding(virq: number): number {
    return virq >= 0 && virq < NR_VIRQS ? this.virqPort[virq]! : 0;
  }

  /**
   * evtchn_set_pending of the 2-level ABI (Xen's evtchn_2l_set_pending): set the pending bit;
   * if it was clear and the port is not masked, set the selector bit, and if that was clear
   * raise the upcall (vcpu_mark_events_pending).
   */
  setPending(port: number): void {
    const w = port >>> 5, bit = 1 << (port & 31);
    const mem = this.ctx.mem;
    const pendAddr = this.siAddr(SHARED_INFO.EVTCHN_PENDING + w * 4);
    const pend = mem.read32(pendAddr);
    if ((pend & bit) !== 0) { this.counters.coalesced++; return; }
    mem.write32(pendAddr, pend | bit);
    this.counters.pendingSet++;
    if ((mem.read32(this.siAddr(SHARED_INFO.EVTCHN_MASK + w * 4)) & bit) !== 0) { this.counters.masked++; return; }
    this.markSelector(w);
  }

  // ------------------------------------------------------------------ internals

  private markSelector(word: number): void {
    const mem = this.ctx.mem;
    const selAddr = this.siAddr(SHARED_INFO.VCPU_INFO + VCPU_INFO.EVTCHN_PENDING_SEL);
    const sel = mem.read32(selAddr);
    const bit = 1 << word;
    if ((sel & bit) !== 0) return;
    mem.write32(selAddr, sel | bit);
    this.counters.upcalls++;
    this.ctx.raiseUpcall();
  }

  private clearPending(port: number): void {
    const addr = this.siAddr(SHARED_INFO.EVTCHN_PENDING + (port >>> 5) * 4);
    this.ctx.mem.write32(addr, this.ctx.mem.read32(addr) & ~(1 << (port & 31)));
  }

  private connectLocal(p: number, remoteDom: number, remotePort: number): void {
    const ch = this.ports[p]!;
    ch.state = Ecs.Interdomain;
    ch.remoteDom = remoteDom;
    ch.remotePort = remotePort;
  }

  private siAddr(offset: number): number {
    return (this.ctx.sharedInfoMfn as number) * 4096 + offset;
  }

  /** An allocated port of this domain (port 0 is reserved, never valid for an operation). */
  private valid(port: number): boolean {
    return Number.isInteger(port) && port > 0 && port < NR_EVENT_CHANNELS && this.ports[port]!.state !== Ecs.Free;
  }

  private isSelf(dom: number): boolean {
    return dom === DOMID_SELF || dom === (this.ctx.domid as number);
  }

  /** DOMID_SELF → our id; our id; 0 (the back ends); a connected pv domain; anything else −1 (no such domain). */
  private resolveDom(dom: number): number {
    if (this.isSelf(dom)) return this.ctx.domid as number;
    if (dom === 0) return 0;
    if (this.peers !== null && this.peers.has(dom)) return dom;
    return -1;
  }

  /** The event channels of pv domain `dom` (this one, or a connected peer). */
  private domain(dom: number): EventChannels {
    return dom === (this.ctx.domid as number) ? this : this.peers?.get(dom) ?? this;
  }

  /** For the mutant `pv-evtchn-wrong-domain`: the lowest-numbered other domain than `dom` (and than us), else `dom`. */
  private wrongDomain(dom: number): number {
    const self = this.ctx.domid as number;
    const ids = [...(this.peers?.keys() ?? [])].filter((d) => d !== dom && d !== self).sort((a, b) => a - b);
    return ids[0] ?? dom;
  }

  /**
   * Connects the event channels of several pv domains (distinct domain ids) so that each can
   * name the others in alloc_unbound / bind_interdomain, and sends reach the peer's
   * shared_info (Xen's interdomain channels between domUs). Throws RangeError on a repeated id.
   */
  static connectDomains(list: readonly EventChannels[]): void {
    const map = new Map<number, EventChannels>();
    for (const e of list) {
      const id = e.ctx.domid as number;
      if (id === 0 || map.has(id)) throw new RangeError(`event channels: domain id ${id} is ${id === 0 ? "domain 0's" : 'given twice'}`);
      map.set(id, e);
    }
    for (const e of list) e.peers = map;
  }

  private freePort(): number {
    for (let p = 1; p < NR_EVENT_CHANNELS; p++) if (this.ports[p]!.state === Ecs.Free) return p;
    return -1;
  }

  private reject(what: string, errno: number): number {
    this.counters.rejected++;
    this.ctx.countRejected(what);
    return -errno;
  }
}

/** Per-bit helper for tests and tools: is `port` pending in the shared_info at `mfn`? */
export function isPending(mem: { read32(a: number): number }, sharedInfoMfn: number, port: number): boolean {
  return (mem.read32(sharedInfoMfn * 4096 + SHARED_INFO.EVTCHN_PENDING + (port >>> 5) * 4) & (1 << (port & 31))) !== 0;
}
