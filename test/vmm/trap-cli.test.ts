/** `virtlab exec --mode`: the mode in the run record, the trap categories, bad modes. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtlab } from '../cli/in-process.js';
import { MONITOR_MODES } from '../../src/vmm/index.js';
import { readExpected, GUESTS } from '../e2e/guest-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'vl-trap-'));


describe('virtlab exec --mode', () => {
  it('runs a guest under trap with the same output and records the mode and the monitor counters', () => {
    const img = join(GUESTS, 'bin', 'sys.elf');
    const j = join(dir, 'sys-trap.json');
    const r = virtlab('exec', img, '--mode', 'trap', '--memory', '128', '--json', j);
    const exp = readExpected('sys');
    expect(r.status).toBe(exp.exitStatus);
    expect(r.stdout).toBe(exp.debugcon + exp.serial);
    const rec = JSON.parse(readFileSync(j, 'utf8'));
    expect(rec.mode).toBe('trap');
    const cats = rec.accounting.categories as Record<string, { cycles: number; count: number }>;
    expect(Object.values(cats).reduce((s, c) => s + c.cycles, 0)).toBe(rec.cycles);
    for (const k of ['exit:io', 'exit:iret', 'exit:mov-to-cr3', 'hidden-fault']) expect(cats[k]!.count, k).toBe(rec.monitor[k]);
    expect(rec.monitor['shadow.hidden-faults']).toBeGreaterThan(0);

    const jn = join(dir, 'sys-native.json');
    expect(virtlab('exec', img, '--memory', '128', '--json', jn).status).toBe(exp.exitStatus);
    const nat = JSON.parse(readFileSync(jn, 'utf8'));
    expect(nat.mode).toBe('native');
    expect(nat.monitor).toEqual({});
    expect(Object.keys(nat.accounting.categories)).toEqual(['guest', 'page-walk', 'idle']);
    // Same guest work, more cycles: the monitor's.
    expect(rec.cycles).toBeGreaterThan(nat.cycles);
  }, 60_000);

  for (const w of ['forkwait', 'ptemod', 'ctxsw', 'null-call']) {
    it(`workload:${w} (the guest kernel: processes, COW fork, SYSENTER) gives the same output under trap but for cycle counts`, () => {
      const jn = join(dir, `${w}-n.json`), jt = join(dir, `${w}-t.json`);
      const n = virtlab('exec', `workload:${w}`, '--json', jn);
      const t = virtlab('exec', `workload:${w}`, '--mode', 'trap', '--json', jt);
      expect(t.status).toBe(n.status);
      const strip = (s: string): string => s.replace(/cycles(_per_op)?=[0-9]+/g, 'cycles=N');
      expect(strip(t.stdout)).toBe(strip(n.stdout));
      expect(t.stdout).not.toBe(n.stdout); // the monitor's work shows in the timed cycles
      const rec = JSON.parse(readFileSync(jt, 'utf8'));
      expect(rec.monitor['shadow.hidden-faults']).toBeGreaterThan(0);
      if (w === 'forkwait' || w === 'ptemod') expect(rec.monitor['shadow.trace-faults']).toBeGreaterThan(0);
      expect(rec.monitor['shadow.cr3-switches']).toBeGreaterThan(0);
    }, 120_000);
  }

  it('rejects an unknown mode, naming it and the known ones', () => {
    const r = virtlab('exec', join(GUESTS, 'bin', 'hello.elf'), '--mode', 'vmx');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--mode: unknown mode "vmx" (known: native, trap');
    for (const m of MONITOR_MODES) expect(r.stderr).toContain(m);
  });
});
