import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { listFigures, loadProfile } from '../../src/profiles/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vl-profiles-cli-'));

function virtlab(...args: string[]): { status: number; stdout: string; stderr: string } {
  let out = '', err = '';
  const status = main(args, {
    stdout: (b) => { out += typeof b === 'string' ? b : Buffer.from(b).toString(); },
    stderr: (t) => { err += t; },
  });
  return { status, stdout: out, stderr: err };
}

const IDS = ['p4-2005', 'core2-2008', 'nehalem-2009', 'skylake-2015', 'zen3-2020', 'p6-provisional'];

describe('virtlab profiles', () => {
  it('lists the five generations and the provisional P6 profile, with EPT/NPT and VPID', () => {
    const r = virtlab('profiles');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const rows = new Map(r.stdout.split('\n').filter((l) => l.trim()).map((l) => [l.split(/\s+/)[0]!, l] as const));
    for (const id of IDS) expect(rows.has(id), id).toBe(true);
    expect(rows.get('nehalem-2009')).toMatch(/ ept\s+yes\s+src\/profiles\/nehalem-2009\.json$/);
    expect(rows.get('zen3-2020')).toMatch(/ npt\s+yes\s/);
    expect(rows.get('p4-2005')).toMatch(/3\.80 GHz\s+no\s+no\s/);
  });

  it('--json gives every profile with its file and hash', () => {
    const r = virtlab('profiles', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.schema).toBe('virtlab.profiles/1');
    expect(j.defaultVirtualization).toBe('skylake-2015');
    const byId = Object.fromEntries(j.profiles.map((p: { id: string }) => [p.id, p]));
    for (const id of IDS) expect(byId[id], id).toBeDefined();
    expect(byId['skylake-2015']).toMatchObject({ nestedPaging: 'ept', vpid: true, vendor: 'intel', frequencyHz: 4e9 });
    expect(byId['core2-2008']).toMatchObject({ nestedPaging: null, vpid: false });
    expect(byId['p6-provisional']).toMatchObject({ vpid: null, hasVirtualizationFigures: false });
    expect(byId['zen3-2020'].sha256).toBe(loadProfile('zen3-2020').sha256);
  });

  it('show prints every figure of a profile with its source', () => {
    const r = virtlab('profiles', 'show', 'p4-2005');
    expect(r.status).toBe(0);
    const figures = listFigures(loadProfile('p4-2005').profile);
    for (const f of figures) expect(r.stdout).toContain(`${f.path}`);
    expect(r.stdout).toMatch(/virtualization\.vmExit\s+1205\s+half .*2409/);
    const j = JSON.parse(virtlab('profiles', 'show', 'p4-2005', '--json').stdout);
    expect(j.figures).toEqual(figures);
  });

  it('an unknown id gives the list of ids, one line, status 2', () => {
    const r = virtlab('profiles', 'show', 'pentium-9000');
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    for (const id of IDS) expect(r.stderr).toContain(id);
  });

  it('a copied file with a bad field is named by its path (show and exec)', () => {
    const p = JSON.parse(readFileSync(loadProfile('skylake-2015').path, 'utf8'));
    p.virtualization.exitHandlers.ioInstruction.value = 'slow';
    p.paravirtualization.hypercall.source = '';
    delete p.tlb.stlb;
    const f = join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify(p));
    for (const r of [virtlab('profiles', 'show', f), virtlab('exec', '/nonexistent-image', '--profile', f)]) {
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/bad\.json: invalid profile: /);
      expect(r.stderr).toContain('virtualization.exitHandlers.ioInstruction.value');
      expect(r.stderr).toContain('paravirtualization.hypercall.source');
      expect(r.stderr).toContain('tlb.stlb');
    }
  });

  it('a copied v2 profile with a changed number runs under exec --profile', () => {
    const p = JSON.parse(readFileSync(loadProfile('skylake-2015').path, 'utf8'));
    p.name = 'my-skylake';
    p.classes.mov.value = 7;
    const f = join(dir, 'mine.json');
    writeFileSync(f, JSON.stringify(p));
    const img = join(dir, 'a.bin');
    writeFileSync(img, Uint8Array.from([0xb0, 0x41, 0xe6, 0xe9, 0xb0, 0x01, 0xe6, 0xf4])); // mov al,'A'; out 0xe9; mov al,1; out 0xf4
    const rec = join(dir, 'run.json');
    const r = virtlab('exec', img, '--flat', '0x100000', '--profile', f, '--json', rec);
    expect(r.stdout).toBe('A');
    expect(r.status).toBe(3);
    const run = JSON.parse(readFileSync(rec, 'utf8'));
    expect(run.profile.name).toBe('my-skylake');
    expect(run.machine.cpuHz).toBe(p.cpu.frequencyHz.value);
    // Two MOVs at the changed figure plus two port accesses at the profile's portIo.
    expect(run.instructions).toBe(4);
    expect(run.cycles).toBe(2 * 7 + 2 * p.events.portIo.value);
  });

  it('rejects an unknown subcommand, a bad option and a missing id as bad input (status 2)', () => {
    const r = virtlab('profiles', 'frobnicate');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown subcommand "frobnicate"/);
    const o = virtlab('profiles', '--bogus');
    expect(o.status).toBe(2);
    expect(o.stderr).toMatch(/^virtlab: profiles: Unknown option '--bogus'/);
    expect(o.stderr).not.toMatch(/internal error/);
    const m = virtlab('profiles', 'show');
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/which profile\?/);
  });
});
