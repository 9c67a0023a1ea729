/**
 * `hw` end to end (issue 4, items 3, 6, 7): the gcc-built test guests and the workload suite
 * under VT-x style hardware-assisted virtualization give native's guest-visible outcome, and
 * the cost shows up as exits per SDM reason, 2-D walk references and (without VPID) TLB
 * flushes, every cycle in exactly one category.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtlab } from '../cli/in-process.js';
import { Machine, type RunOutcome } from '../../src/machine/machine.js';
import { DEFAULT_VMM_PROFILE, loadProfile, toVmmCosts } from '../../src/profiles/index.js';
import { ExitReason } from '../../src/vmm/hw/exit-reasons.js';
import { HwMonitor } from '../../src/vmm/hw/hw.js';
import { createMonitor, monitorMemoryMiB } from '../../src/vmm/index.js';
import { describeExit, GUEST_MEMORY_MIB, lineDiff, qemuStatusOf, readExpected, readGuest } from '../e2e/guest-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'vl-hw-'));


interface Cat { cycles: number; count: number }
interface Rec {
  cycles: number; mode: string; profile: { name: string };
  accounting: { total: number; categories: Record<string, Cat> };
  tlb: { itlb: { flushes: number }; dtlb: { flushes: number }; walkReferences: number };
  monitor: Record<string, number>; modeOptions?: Record<string, string>;
}
const readRec = (p: string): Rec => JSON.parse(readFileSync(p, 'utf8')) as Rec;

function checkAccounting(total: number, cats: Record<string, Cat>): void {
  const list = Object.values(cats);
  expect(list.reduce((s, c) => s + c.cycles, 0)).toBe(total);
  for (const c of list) { expect(Number.isInteger(c.cycles)).toBe(true); expect(c.cycles).toBeGreaterThanOrEqual(0); }
}

function runHw(name: string, paging: 'nested' | 'shadow' = 'nested'): { debugcon: string; serial: string; outcome: RunOutcome; monitor: HwMonitor } {
  const loaded = loadProfile(DEFAULT_VMM_PROFILE);
  const machine = new Machine({ memoryMiB: GUEST_MEMORY_MIB, monitorMiB: monitorMemoryMiB('hw', GUEST_MEMORY_MIB, paging), profile: loaded.profile });
  const e9: number[] = [];
  machine.io.registerWrite8(0xe9, (_p, v) => { e9.push(v & 0xff); });
  machine.loadMultiboot(readGuest(name), name + '.elf');
  const monitor = createMonitor('hw', { profile: loaded.profile, paging }) as HwMonitor;
  monitor.attach(machine);
  const outcome = machine.run({ maxInstructions: 60_000_000 });
  return { debugcon: Buffer.from(e9).toString('latin1'), serial: machine.console.text(), outcome, monitor };
}

describe('hw (VPID; nested and shadow paging): the test guests run exactly as natively', () => {
  for (const paging of ['nested', 'shadow'] as const) for (const name of ['hello', 'compute', 'isa', 'sys', 'prot', 'sys-heavy-small']) {
    it(`${name} (${paging})`, () => {
      const q = readExpected(name);
      const r = runHw(name, paging);
      expect(r.debugcon, lineDiff(q.debugcon, r.debugcon, 12).join('\n') + '\n' + describeExit(r.outcome)).toBe(q.debugcon);
      expect(r.serial).toBe(q.serial);
      expect(qemuStatusOf(r.outcome)).toBe(q.exitStatus);
      checkAccounting(r.outcome.accounting.total, r.outcome.accounting.categories);
      const st = r.monitor.stats();
      // The guest ran under the monitor: its console I/O exited, and the CPU took the EPT walk.
      expect(st['exit:io-instruction']).toBeGreaterThan(0);
      expect(r.outcome.accounting.categories['exit:io-instruction']!.count).toBe(st['exit:io-instruction']);
      expect(st['ept.2d-walk-modelled']).toBe(paging === 'nested' ? 1 : 0);
      expect(st['tlb.transition-flushes']).toBe(0);
      if (paging === 'shadow') {
        // The guest ran on shadow tables in monitor memory; its faults on them were exits.
        expect(r.monitor.shadow).not.toBeNull();
        expect(st['shadow.hidden-faults']).toBeGreaterThan(0);
        expect(st['exit:exception-nmi']).toBeGreaterThanOrEqual(st['shadow.trace-faults']! + st['shadow.guest-faults']!);
      }
    }, 120_000);
  }

  it('sys (shadow): CR3 loads and INVLPG exit, the real CR3 is a shadow, the guest reads its own', () => {
    const r = runHw('sys', 'shadow');
    const st = r.monitor.stats();
    expect(st['exit:cr-access']).toBeGreaterThan(0);
    expect(st['exit:invlpg']).toBe(st['shadow.invlpg']);
    expect(st['shadow.trace-faults']).toBeGreaterThan(0);
    const m = r.outcome.accounting.categories;
    expect(m['exit:exception-nmi']!.count).toBe(st['exit:exception-nmi']);
    for (const f of r.monitor.shadow!.allShadowFrames()) expect(f).toBeLessThan(128 * 1024 * 1024);
  }, 120_000);

  it('sys (paging on): every TLB miss took the 2-D walk, with more references than the guest levels alone', () => {
    const r = runHw('sys');
    const st = r.monitor.stats();
    expect(st['ept.walks']).toBeGreaterThan(0);
    expect(st['ept.ept-refs']! + st['ept.ntlb-hits']!).toBeGreaterThan(0);
    // page-walk counts guest and EPT references alike.
    expect(r.outcome.tlb.walkReferences).toBe(st['ept.guest-refs']! + st['ept.ept-refs']!);
  }, 120_000);
});

const strip = (s: string): string => s.replace(/cycles(_per_op)?=[0-9]+/g, 'cycles=N');
const checksum = (s: string): string => { const m = /checksum: (0x[0-9a-f]+)/.exec(s); expect(m, s).not.toBeNull(); return m![1]!; };

describe('virtlab exec --mode hw on workloads', () => {
  const costs = toVmmCosts(loadProfile(DEFAULT_VMM_PROFILE).profile);
  const exitCost = (r: number): number => costs.vmExit + costs.vmEntry + costs.handlerByReason[r]!;

  for (const w of ['syscall', 'in', 'pgfault', 'forkwait', 'ctxsw']) {
    it(`workload:${w}: native's checksum with VPID on and off; exits, 2-D walks and flushes accounted`, () => {
      const jn = join(dir, `${w}-n.json`), jh = join(dir, `${w}-h.json`), jo = join(dir, `${w}-o.json`);
      // Native with the same profile, so that only the mechanism differs.
      const n = virtlab('exec', `workload:${w}`, '--profile', DEFAULT_VMM_PROFILE, '--json', jn);
      const h = virtlab('exec', `workload:${w}`, '--mode', 'hw', '--json', jh);
      const o = virtlab('exec', `workload:${w}`, '--mode', 'hw', '--paging', 'nested', '--vpid', 'off', '--json', jo);
      const js = join(dir, `${w}-s.json`);
      const sh = virtlab('exec', `workload:${w}`, '--mode', 'hw', '--paging', 'shadow', '--json', js);
      expect(n.stderr).toBe('');
      for (const r of [h, o, sh]) {
        expect(r.stderr).toBe('');
        expect(r.status).toBe(n.status);
        expect(checksum(r.stdout)).toBe(checksum(n.stdout));
        expect(strip(r.stdout)).toBe(strip(n.stdout));
      }
      const rn = readRec(jn), rh = readRec(jh), ro = readRec(jo), rs = readRec(js);
      expect(rs.modeOptions).toEqual({ paging: 'shadow', vpid: 'on' });
      // Shadow paging: hidden, trace and guest faults are #PF exits; CR3 loads exit.
      expect(rs.monitor['exit:exception-nmi']).toBeGreaterThanOrEqual(rs.monitor['shadow.trace-faults']! + rs.monitor['shadow.guest-faults']!);
      expect(rs.monitor['shadow.hidden-faults']).toBeGreaterThan(0);
      expect(rs.monitor['exit:cr-access']).toBeGreaterThan(0);
      expect(rh.mode).toBe('hw');
      expect(rh.profile.name).toBe(DEFAULT_VMM_PROFILE); // the default for the virtualization modes
      expect(rh.modeOptions).toEqual({ paging: 'nested', vpid: 'on' });
      expect(ro.modeOptions).toEqual({ paging: 'nested', vpid: 'off' });
      for (const r of [rn, rh, ro, rs]) checkAccounting(r.cycles, r.accounting.categories);
      for (const r of [rh, ro, rs]) {
        // Exits per reason: the same counts in the monitor's counters and the categories.
        for (const [k, c] of Object.entries(r.accounting.categories)) {
          if (k.startsWith('exit:')) expect(c.count, k).toBe(r.monitor[k]);
        }
        expect(r.cycles).toBeGreaterThan(rn.cycles);
      }
      // VPID off: an entry and an exit each flush the TLBs.
      expect(rh.monitor['tlb.transition-flushes']).toBe(0);
      expect(ro.monitor['tlb.transition-flushes']).toBeGreaterThan(0);
      expect(ro.tlb.dtlb.flushes).toBeGreaterThan(rh.tlb.dtlb.flushes);
      expect(ro.tlb.dtlb.flushes - rh.tlb.dtlb.flushes).toBe(ro.monitor['tlb.transition-flushes']);
      expect(ro.tlb.walkReferences).toBeGreaterThan(rh.tlb.walkReferences);
      // Same guest work, same exits: VPID only changes the walks — and the run's length, so a
      // timer tick may land once more or less (its handler's PIC accesses: a few I/O exits).
      expect(Math.abs(ro.monitor['exit:io-instruction']! - rh.monitor['exit:io-instruction']!)).toBeLessThanOrEqual(4);

      if (w === 'in') {
        const io = rh.accounting.categories['exit:io-instruction']!;
        expect(io.count).toBeGreaterThanOrEqual(10_000); // one per IN of the benchmark loop at least
        expect(io.cycles).toBe(io.count * exitCost(ExitReason.IoInstruction));
        expect(rh.accounting.categories.device!.cycles).toBe(io.count * Math.round(costs.devices.portIoEmulation));
      }
      if (w === 'pgfault' || w === 'forkwait') {
        // Page-table writes are traced under shadow paging, each one an exit.
        expect(rs.monitor['shadow.trace-faults']).toBeGreaterThan(0);
        // Two-dimensional walks: more references per miss than the guest's two levels.
        expect(rh.tlb.walkReferences).toBeGreaterThan(rn.tlb.walkReferences);
        expect(rh.monitor['ept.guest-refs']).toBeGreaterThan(0);
        expect(rh.accounting.categories['page-walk']!.count).toBe(rh.tlb.walkReferences);
      }
    }, 120_000);
  }

  it('refuses hw options without --mode hw, bad values, and features the profile lacks', () => {
    const img = 'workload:syscall';
    const cases: Array<[string[], RegExp]> = [
      [['--paging', 'nested'], /--paging is only valid with --mode hw/],
      [['--mode', 'trap', '--vpid', 'off'], /--vpid is only valid with --mode hw/],
      [['--mode', 'hw', '--paging', 'flat'], /--paging: expected nested or shadow/],
      [['--mode', 'hw', '--vpid', 'yes'], /--vpid: expected on or off/],
      [['--mode', 'hw', '--profile', 'p4-2005'], /p4-2005 has no nested paging/],
      [['--mode', 'hw', '--profile', 'p4-2005', '--paging', 'shadow'], /p4-2005 has no VPID/],
      [['--mode', 'hw', '--profile', 'p6-provisional'], /no virtualization figures/],
    ];
    for (const [args, msg] of cases) {
      const r = virtlab('exec', img, ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(msg);
      expect(r.stdout).toBe('');
    }
  });

  it('p4-2005 (first VT-x: no EPT, no VPID) runs with --paging shadow --vpid off and gives the native checksum', () => {
    const n = virtlab('exec', 'workload:forkwait', '--profile', 'p4-2005');
    const j = join(dir, 'p4.json');
    const r = virtlab('exec', 'workload:forkwait', '--mode', 'hw', '--profile', 'p4-2005', '--paging', 'shadow', '--vpid', 'off', '--json', j);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(n.status);
    expect(checksum(r.stdout)).toBe(checksum(n.stdout));
    const rec = readRec(j);
    const p4 = toVmmCosts(loadProfile('p4-2005').profile);
    const cr = rec.accounting.categories['exit:cr-access']!;
    expect(cr.cycles).toBe(cr.count * (p4.vmExit + p4.vmEntry + p4.handlerByReason[ExitReason.CrAccess]!));
    expect(rec.monitor['tlb.transition-flushes']).toBeGreaterThan(0);
  });
});
