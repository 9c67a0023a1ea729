/** `virtlab record`, `replay` and `inspect` end to end (in process). */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtlab } from '../cli/in-process.js';

const dir = mkdtempSync(join(tmpdir(), 'vl-trace-cli-'));
const GUEST_BIN = new URL('../guests/bin/', import.meta.url).pathname;

describe('virtlab record / replay / inspect', () => {
  it('records a workload (the same bytes twice), inspects it, and replays it under native and hw with the recording\'s output', () => {
    const t1 = join(dir, 'db1.vlt'), t2 = join(dir, 'db2.vlt'), j = join(dir, 'db-rec.json');
    const r1 = virtlab('record', 'workload:database', '--param', 'txns=4', '--param', 'dbsize=16', '--seed', '5', '-o', t1, '--json', j);
    expect(r1.stderr).toBe('');
    expect(r1.status).toBe(1);
    expect(r1.stdout).toMatch(/checksum: 0x[0-9a-f]+/);
    virtlab('record', 'workload:database', '--param', 'txns=4', '--param', 'dbsize=16', '--seed', '5', '-o', t2);
    expect(readFileSync(t1).equals(readFileSync(t2))).toBe(true);

    const i = virtlab('inspect', t1);
    expect(i.status).toBe(0);
    expect(i.stdout).toContain('workload database {"txns":"4","dbsize":"16"}');
    expect(i.stdout).toMatch(/seed 5;/);
    expect(i.stdout).toMatch(/block-complete [1-9]/);
    expect(i.stdout).toMatch(/checksums: all \d+ section CRC-32s/);
    const js = JSON.parse(virtlab('inspect', t1, '--json').stdout);
    const rec = JSON.parse(readFileSync(j, 'utf8'));
    expect(js.instructions).toBe(rec.instructions);
    expect(js.header.machine.disk.sectors).toBeGreaterThanOrEqual(16);
    expect(js.sections.map((s: { name: string }) => s.name)).toEqual(['header', 'blob', 'blob', 'chunk', 'index', 'trailer']);

    for (const args of [['--mode', 'native'], ['--mode', 'hw', '--paging', 'shadow'], ['--mode', 'full', '--no-ram-check', '--check-branches']]) {
      const jr = join(dir, `db-${args.join('')}.json`);
      const r = virtlab('replay', t1, ...args, '--json', jr);
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout).toBe(r1.stdout); // the guest's own cycle counts too: its RDTSC readings are the trace's
      const rr = JSON.parse(readFileSync(jr, 'utf8'));
      expect(rr.consoleSha256).toBe(rec.consoleSha256);
      expect(rr.instructions).toBe(rec.instructions);
    }
  }, 120_000);

  it('a diverging replay (trap): one line naming the position, expected and actual, and the instruction; status 2; no run record', () => {
    const t = join(dir, 'isa.vlt');
    expect(virtlab('record', join(GUEST_BIN, 'isa.elf'), '--memory', '128', '-o', t).status).toBe(35);
    const j = join(dir, 'isa-trap.json');
    const r = virtlab('replay', t, '--mode', 'trap', '--json', j);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^virtlab: ${t.replace(/[.]/g, '\\.')}: replay diverged at logical instruction \\d+: .+: expected .+, actual .+; at 0x[0-9a-f]{8}: .+\\n$`));
    expect(existsSync(j)).toBe(false);
  }, 120_000);

  it('bad command lines: one line each, status 2', () => {
    expect(virtlab('record', 'workload:forkwait').stderr).toContain('record: -o FILE is required');
    expect(virtlab('replay', join(dir, 'x.vlt')).stderr).toContain('replay: --mode is required');
    expect(virtlab('replay', join(dir, 'x.vlt'), '--mode', 'bogus').status).toBe(2);
    expect(virtlab('replay', join(dir, 'x.vlt'), '--mode', 'native', '--paging', 'shadow').stderr).toContain('--paging is only valid with --mode hw');
    expect(virtlab('record', 'workload:forkwait', '-o', join(dir, 'y.vlt'), '--seed', 'abc').stderr).toContain('--seed: expected an integer');
  });
});
