/**
 * `full` (binary translation, issue 4 item 2): the gcc-built guests give exactly the native
 * (QEMU-recorded) output — including the lines where `trap` leaks ring-1 state through
 * sensitive instructions (test/vmm/trap.test.ts) — the workloads give native's checksums,
 * and the translator's work shows as translation, callout and in-cache emulation counters
 * and categories that sum to the total.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtlab } from '../cli/in-process.js';
import { Machine, type RunOutcome } from '../../src/machine/machine.js';
import { loadProfile, toVmmCosts } from '../../src/profiles/index.js';
import { FullMonitor, FULL_MONITOR_MIB, fullCosts } from '../../src/vmm/full/full.js';
import { TranslationCache } from '../../src/vmm/full/translation-cache.js';
import { createMonitor, monitorMemoryMiB, MONITOR_MODES } from '../../src/vmm/index.js';
import { GUEST_MEMORY_MIB, qemuStatusOf, readExpected, readGuest } from '../e2e/guest-harness.js';

const PROFILE = 'skylake-2015';

interface FullRun { debugcon: string; serial: string; outcome: RunOutcome; monitor: FullMonitor; machine: Machine }

function runFull(name: string, maxInstructions = 60_000_000): FullRun {
  const machine = new Machine({ memoryMiB: GUEST_MEMORY_MIB, monitorMiB: FULL_MONITOR_MIB, profile: loadProfile(PROFILE).profile });
  const e9: number[] = [];
  machine.io.registerWrite8(0xe9, (_p, v) => { e9.push(v & 0xff); });
  machine.loadMultiboot(readGuest(name), name + '.elf');
  const monitor = new FullMonitor();
  monitor.attach(machine);
  const outcome = machine.run({ maxInstructions });
  return { debugcon: Buffer.from(e9).toString('latin1'), serial: machine.console.text(), outcome, monitor, machine };
}

function checkAccounting(o: RunOutcome): void {
  const cats = Object.values(o.accounting.categories);
  expect(cats.reduce((s, c) => s + c.cycles, 0)).toBe(o.cycles);
  for (const c of cats) { expect(c.cycles).toBeGreaterThanOrEqual(0); expect(Number.isInteger(c.cycles)).toBe(true); }
}

const costs = fullCosts(loadProfile(PROFILE).profile);

describe('full: the test guests give exactly the native output', () => {
  for (const name of ['hello', 'compute', 'isa', 'sys', 'prot', 'sys-heavy-small']) {
    it(name, () => {
      const exp = readExpected(name);
      const r = runFull(name);
      expect(r.debugcon).toBe(exp.debugcon);
      expect(r.serial).toBe(exp.serial);
      expect(qemuStatusOf(r.outcome)).toBe(exp.exitStatus);
      checkAccounting(r.outcome);
      const st = r.monitor.stats();
      const cats = r.outcome.accounting.categories;
      // Kernel code ran from the translation cache: blocks translated, then chained.
      expect(st['bt.blocks']).toBeGreaterThan(0);
      expect(st['bt.instructions-translated']).toBeGreaterThanOrEqual(st['bt.blocks']!);
      expect(st['bt.chained-entries']).toBeGreaterThan(st['bt.blocks']!);
      expect(cats.translate!.cycles).toBeGreaterThanOrEqual(st['bt.instructions-translated']! * costs.translatePerInstruction);
      if (st['bt.adapted-instructions'] === 0) expect(cats.translate!.cycles).toBe(st['bt.instructions-translated']! * costs.translatePerInstruction);
      // The kernel's port I/O is a callout from translated code, not a trap.
      expect(st['callout:io']).toBeGreaterThan(0);
      expect(st['exit:io']).toBeUndefined();
      expect(cats['exit:io']).toBeUndefined();
      expect(cats.callout!.count).toBe(Object.entries(st).filter(([k]) => k.startsWith('callout:')).reduce((s, [, v]) => s + v, 0));
      // The guest kernel really ran deprivileged, on the shadow.
      expect(r.machine.cpu.cr3 >>> 0).toBeGreaterThanOrEqual(r.machine.mem.guestSize);
    }, 60_000);
  }
});

describe('full: sensitive instructions read the virtual state (where trap leaks ring 1)', () => {
  it('isa: PUSHF/POPF run as in-cache emulation of the virtual IF/IOPL', () => {
    const r = runFull('isa');
    const st = r.monitor.stats();
    expect(st['in-tc:pushf']).toBeGreaterThan(0);
    expect(st['in-tc:popf']).toBeGreaterThan(0);
    const inTc = Object.entries(st).filter(([k]) => k.startsWith('in-tc:')).reduce((s, [, v]) => s + v, 0);
    expect(r.outcome.accounting.categories['in-tc']).toEqual({ cycles: inTc * costs.inTc, count: inTc });
  }, 60_000);

  it('prot: SGDT, SIDT, STR, SLDT, SMSW, LAR, LSL, VERR, VERW, MOV from CS/SS are translated', () => {
    const r = runFull('prot');
    expect(r.debugcon).toBe(readExpected('prot').debugcon);
    const st = r.monitor.stats();
    for (const k of ['sgdt', 'sidt', 'str', 'sldt', 'smsw', 'lar', 'lsl', 'verr', 'verw', 'mov-sreg']) expect(st[`in-tc:${k}`], k).toBeGreaterThan(0);
    // Privileged instructions call out (LGDT, LTR, MOV CRn, ...).
    for (const k of ['lgdt', 'lidt', 'ltr', 'mov-to-cr0']) expect(st[`callout:${k}`], k).toBeGreaterThan(0);
    // The real machine still runs the monitor's tables in ring 1.
    expect(r.machine.cpu.cpl === 1 || r.machine.cpu.cpl === 3).toBe(true);
  }, 60_000);
});

describe('full: the translation cache', () => {
  it('prot writes pages holding translated code: their blocks are dropped and retranslated', () => {
    const r = runFull('prot');
    const st = r.monitor.stats();
    expect(st['bt.code-writes']).toBeGreaterThan(0);
    expect(st['bt.invalidated-blocks']).toBeGreaterThanOrEqual(st['bt.code-writes']!);
    // Every block translated is either still cached or was invalidated.
    expect(st['bt.cached-blocks']).toBe(st['bt.blocks']! - st['bt.invalidated-blocks']!);
    // Every frame holding cached code is write-protected through shadow paging.
    const frames = [...r.monitor.tc.codeFrames()];
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) expect(r.monitor.trap.shadow.isTraced(f), f.toString(16)).toBe(true);
  }, 60_000);

  it('a block is straight-line code up to and including the next control transfer', () => {
    const tc = new TranslationCache();
    // nop; mov eax, 1; cli; jmp $  |  inc eax
    const code = Uint8Array.from([0x90, 0xb8, 1, 0, 0, 0, 0xfa, 0xeb, 0xfe, 0x40]);
    const b = tc.translate(0x1000, 0x1000, code, 32, -1);
    expect(b.instructions).toBe(4);
    expect(b.frames).toEqual([0x1000]);
    expect(tc.has(0x1000)).toBe(true);
    expect(tc.blockAt(0x1007)).toBe(b);
    // A block crossing a page records both frames; writing either drops it.
    const c = tc.translate(0x2ffe, 0x7ffe, Uint8Array.from([0x90, 0x90, 0x90, 0xc3]), 32, 0x5000);
    expect(c.frames).toEqual([0x2000, 0x5000]);
    expect(tc.invalidateFrame(0x5000)).toBe(1);
    expect(tc.has(0x2ffe)).toBe(false);
    expect(tc.has(0x1000)).toBe(true);
    expect(tc.stats).toMatchObject({ blocks: 2, instructions: 8, invalidatedBlocks: 1 });
  });
});

describe('full: costs from the profile', () => {
  it('takes the binary-translation figures of the profile', () => {
    const bt = toVmmCosts(loadProfile(PROFILE).profile).bt;
    expect(costs).toEqual({
      translatePerInstruction: Math.round(bt.translatePerInstruction), callout: Math.round(bt.callout),
      inTc: Math.round(bt.inTcEmulation), shadowPteUpdate: Math.round(bt.shadowPteUpdate),
    });
  });
});

const dir = mkdtempSync(join(tmpdir(), 'vl-full-'));

describe('virtlab exec --mode full: the workloads give native\'s checksums', () => {
  it('is a registered mode with monitor memory', () => {
    expect(MONITOR_MODES).toContain('full');
    expect(monitorMemoryMiB('full')).toBe(FULL_MONITOR_MIB);
    expect(createMonitor('full')).toBeInstanceOf(FullMonitor);
  });

  for (const w of ['syscall', 'forkwait', 'ctxsw', 'pgfault']) {
    it(`workload:${w}`, () => {
      const jn = join(dir, `${w}-n.json`), jf = join(dir, `${w}-f.json`);
      const n = virtlab('exec', `workload:${w}`, '--json', jn);
      const f = virtlab('exec', `workload:${w}`, '--mode', 'full', '--json', jf);
      expect(f.status).toBe(n.status);
      const checksum = (s: string): string => /checksum: (0x[0-9a-f]{8})/.exec(s)?.[1] ?? '(none)';
      expect(checksum(n.stdout)).not.toBe('(none)');
      expect(checksum(f.stdout)).toBe(checksum(n.stdout));
      const strip = (s: string): string => s.replace(/cycles(_per_op)?=[0-9]+/g, 'cycles=N');
      expect(strip(f.stdout)).toBe(strip(n.stdout));
      const rec = JSON.parse(readFileSync(jf, 'utf8')) as { mode: string; cycles: number; accounting: { categories: Record<string, { cycles: number; count: number }> }; monitor: Record<string, number> };
      expect(rec.mode).toBe('full');
      const cats = rec.accounting.categories;
      expect(Object.values(cats).reduce((s, c) => s + c.cycles, 0)).toBe(rec.cycles);
      for (const k of ['translate', 'callout', 'hidden-fault']) expect(cats[k]?.count, k).toBeGreaterThan(0);
      // One translate charge per block translated, and one per adaptive retranslation.
      expect(cats.translate!.count).toBe(rec.monitor['bt.blocks']! + rec.monitor['bt.retranslations']!);
      if (w === 'syscall') {
        // The kernel writes a traced page on every call: that instruction is adapted to call out.
        expect(rec.monitor['bt.adapted-instructions']).toBeGreaterThan(0);
        expect(rec.monitor['adaptive-callout']).toBeGreaterThan(0);
        expect(cats['shadow-sync']!.count).toBeGreaterThan(0);
      }
    }, 180_000);
  }
});
