// pv-isolation (issue 8): hostile hypercall sequences on a booted pv domain keep the frame
// accounting, the hypervisor's memory and the errno/attack accounting intact; and the checker
// sees a broken hypervisor (a pv mutant) with a short, readable counterexample.
import { describe, expect, it } from 'vitest';
import { runProperty } from '../../src/verify/properties.js';
import { actionText, bootPvDomain, checkDomain, runPvActions, type PvAction } from '../../src/verify/pv-isolation.js';
import { withMutant } from '../../src/vmm/mutants.js';

const fmt = (r: ReturnType<typeof runProperty>): string => JSON.stringify({ cx: r.counterexample?.message, listing: r.counterexample?.listing });

describe('pv-isolation', () => {
  it('holds for the pv hypervisor as built (bounded runs, fixed seed)', { timeout: 60_000 }, () => {
    const r = runProperty('pv-isolation', { runs: 60, seed: 1 });
    expect(r.ok, fmt(r)).toBe(true);
    expect(r.runs).toBe(60);
  });

  it('regression (found by this property): mmu_update into the builder\'s bootstrap page table, no longer a table, is refused', { timeout: 30_000 }, () => {
    const r = runPvActions([{ op: 'mmu_update', table: { k: 'hyp', i: 9 }, index: 768, frame: { k: 'l1', i: 0 }, flags: 1 }]);
    expect(r.violation, r.log.join('\n')).toBeNull();
    expect(r.log[0]).toMatch(/= -1$/); // -EPERM
  });

  it('a booted domain satisfies the invariants before any action', { timeout: 30_000 }, () => {
    expect(checkDomain(bootPvDomain())).toBeNull();
  });

  it('hostile calls are refused with Xen errnos and counted; the state stays consistent', { timeout: 30_000 }, () => {
    const d = bootPvDomain();
    const seq: PvAction[] = [
      { op: 'mmu_update', table: { k: 'l1', i: 0 }, index: 5, frame: { k: 'hyp', i: 3 }, flags: 1 }, // hypervisor frame
      { op: 'mmu_update', table: { k: 'l1', i: 0 }, index: 5, frame: { k: 'l2' }, flags: 3 }, // directory writable
      { op: 'mmu_update', table: { k: 'l2' }, index: 1023, frame: { k: 'l2' }, flags: 1 }, // hypervisor slot
      { op: 'mmuext_op', cmd: 'pin_l1', frame: { k: 'hyp', i: 1 } },
      { op: 'backend_grant', ref: 1, domid: 0, flags: 1, frame: { k: 'l2' }, readonly: false }, // page table, writable
    ];
    const before = d.monitor.stats();
    const r = runPvActions(seq, d);
    expect(r.violation, r.log.join('\n')).toBeNull();
    expect(r.log[0]).toMatch(/= -1$/); // -EPERM
    expect(r.log[1]).toMatch(/= -22$/); // -EINVAL
    expect(r.log[2]).toMatch(/= -22$/);
    expect(r.log[4]).toMatch(/status -1$/); // GNTST_general_error
    const after = d.monitor.stats();
    expect((after['attack.foreign-frame'] ?? 0) - (before['attack.foreign-frame'] ?? 0)).toBe(2);
    expect(after['attack.grant-typed-frame']).toBe(1);
    expect(d.monitor.mm.audit()).toEqual([]);
  });

  it('sees each injected hypervisor bug on a hand-written sequence', { timeout: 30_000 }, () => {
    const cases: [string, PvAction[], RegExp][] = [
      ['pv-foreign-frame', [{ op: 'update_va_mapping', page: 0, frame: { k: 'hyp', i: 0 }, flags: 1, uvmf: 0 }], /a frame the domain does not own/],
      ['pv-writable-pagetable', [{ op: 'update_va_mapping', page: 0, frame: { k: 'l2' }, flags: 3, uvmf: 0 }], /writable/],
      ['pv-unpin-keeps-type', [{ op: 'mmuext_op', cmd: 'unpin', frame: { k: 'l2' } }], /^audit: frame 0x[0-9a-f]+: type count 2, references 1/],
      ['pv-grant-any-domid', [{ op: 'backend_grant', ref: 0, domid: 1, flags: 1, frame: { k: 'pfn', i: 9 }, readonly: true }], /grants domain 1/],
      ['pv-grant-typed-frame', [{ op: 'backend_grant', ref: 0, domid: 0, flags: 1, frame: { k: 'l1', i: 0 }, readonly: false }], /maps page table 0x[0-9a-f]+ writable/],
      ['pv-evtchn-send-unbound', [{ op: 'evtchn', cmd: 'alloc_unbound', port: 0 }, { op: 'evtchn', cmd: 'send', port: 2 }], /set port 2 pending/],
    ];
    for (const [m, seq, msg] of cases) {
      expect(runPvActions(seq).violation, `${m} without the mutant`).toBeNull();
      expect(withMutant(m, () => runPvActions(seq).violation), m).toMatch(msg);
    }
  });

  it('prints a counterexample as hypercall names and arguments', () => {
    expect(actionText({ op: 'mmu_update', table: { k: 'l1', i: 2 }, index: 768, frame: { k: 'hyp', i: 4 }, flags: 3 })).toBe('mmu_update(l1#2[768] := hyp+4 P|W)');
    expect(actionText({ op: 'multicall', calls: [{ op: 'mmuext_op', cmd: 'unpin', frame: { k: 'l2' } }] })).toBe('multicall[mmuext_op(unpin l2)]');
    expect(actionText({ op: 'evtchn', cmd: 'send', port: 3 })).toBe('event_channel_op(send 3)');
  });
});
