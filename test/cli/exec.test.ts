import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { buildElf32, cat, multibootHeader, printAndExit } from '../guest/elf-writer.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'vl-cli-'));

function file(name: string, bytes: Uint8Array | number[] | string): string {
  const p = join(dir, name);
  writeFileSync(p, typeof bytes === 'string' ? bytes : Uint8Array.from(bytes));
  return p;
}

interface Result { status: number | null; stdout: Buffer; stderr: string }

/** The real command, in its own process (as `virtlab` is run). */
function spawnVirtlab(...args: string[]): Promise<Result> {
  return new Promise((done) => {
    const child = execFile(process.execPath, ['--import', './scripts/ts-register.mjs', 'src/cli/main.ts', ...args],
      { cwd: ROOT, encoding: 'buffer' }, (_err, stdout, stderr) => {
        done({ status: child.exitCode, stdout, stderr: stderr.toString() });
      });
  });
}

/** The same entry point called in-process (fast; used for the many error cases). */
function virtlab(...args: string[]): Result {
  const out: Buffer[] = [];
  let err = '';
  const status = main(args, {
    stdout: (b) => { out.push(Buffer.from(typeof b === 'string' ? Buffer.from(b) : b)); },
    stderr: (t) => { err += t; },
  });
  return { status, stdout: Buffer.concat(out), stderr: err };
}

/** One line on stderr, no stack trace. */
function expectOneLine(stderr: string, re: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines.length).toBe(1);
  expect(lines[0]).toMatch(re);
  expect(stderr).not.toMatch(/\n\s+at /);
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

const hello = file('hello.elf', buildElf32({
  entry: 0x10000c,
  segments: [{ paddr: 0x100000, data: cat(multibootHeader(0x3), printAndExit('hello\n', 0)) }],
}));

describe('virtlab exec', () => {
  it.concurrent('runs a flat image: console on stdout, exit status from the exit device (own process)', async () => {
    const img = file('a.bin', [0xb0, 0x41, 0xe6, 0xe9, 0xb0, 0x01, 0xe6, 0xf4]);
    const r = await spawnVirtlab('exec', img, '--flat', '0x100000');
    expect(r.stdout.toString()).toBe('A');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(3);
  });

  it.concurrent('runs a Multiboot ELF and writes a deterministic run record (two processes)', async () => {
    const j1 = join(dir, 'run1.json'), j2 = join(dir, 'run2.json');
    const [r1, r2] = await Promise.all([spawnVirtlab('exec', hello, '--json', j1), spawnVirtlab('exec', hello, '--json', j2)]);
    expect(r1.stdout.toString()).toBe('hello\n');
    expect(r1.status).toBe(1);
    expect(r2.status).toBe(1);
    const b1 = readFileSync(j1), b2 = readFileSync(j2);
    expect(b1.equals(b2)).toBe(true);
    const rec = JSON.parse(b1.toString());
    expect(Object.keys(rec).slice(0, 5)).toEqual(['schema', 'image', 'mode', 'profile', 'machine']);
    expect(rec.schema).toBe('virtlab.run/1');
    expect(rec.image).toEqual({ path: hello, sha256: sha(readFileSync(hello)), format: 'multiboot' });
    expect(rec.mode).toBe('native');
    expect(rec.profile.name).toBe('p6-provisional');
    expect(rec.profile.sha256).toBe(sha(readFileSync(join(ROOT, 'src/profiles/p6-provisional.json'))));
    expect(rec.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(rec.exitStatus).toBe(1);
    expect(rec.instructions).toBe(14);
    expect(rec.consoleBytes).toBe(6);
    expect(rec.consoleSha256).toBe(sha(r1.stdout));
    expect(rec.tlb.itlb).toMatchObject({ hits: 0, misses: 0 });
    // Atomic write: no temporary file left behind.
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('starts a flat image in real mode at --entry', () => {
    // Two bytes of padding, then code that runs the same in 16- and 32-bit mode.
    const img = file('real.bin', [0x00, 0x00, 0xb0, 0x52, 0xe6, 0xe9, 0xb0, 0x02, 0xe6, 0xf4]);
    const j = join(dir, 'real.json');
    const r = virtlab('exec', img, '--flat', '0x7c00', '--entry', '0x7c02', '--real-mode', '--json', j);
    expect(r.stdout.toString()).toBe('R');
    expect(r.status).toBe(5);
    expect(JSON.parse(readFileSync(j, 'utf8')).image.format).toBe('flat');
  });

  it('reports progress on stderr with --progress', () => {
    const r = virtlab('exec', file('prog.bin', [0xb0, 0x00, 0xe6, 0xf4]), '--flat', '0x100000', '--progress');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^virtlab: 2 instructions, \d+ cycles\n$/);
  });

  it('passes the command line and honours --memory', () => {
    const j = join(dir, 'mem.json');
    const r = virtlab('exec', hello, '--memory', '16', '--cmdline', 'quiet', '--json', j);
    expect(r.status).toBe(1);
    expect(JSON.parse(readFileSync(j, 'utf8')).machine.memoryMiB).toBe(16);
  });

  it('exits 124 with a message when the instruction limit is reached', () => {
    const img = file('loop.bin', [0xeb, 0xfe]);
    const j = join(dir, 'limit.json');
    const r = virtlab('exec', img, '--flat', '0x100000', '--max-instructions', '500', '--json', j);
    expect(r.status).toBe(124);
    expectOneLine(r.stderr, /instruction limit reached after 500 instructions/);
    expect(JSON.parse(readFileSync(j, 'utf8')).exit.reason).toBe('instruction-limit');
  });

  it.concurrent('reports a triple fault as the guest outcome: status 2, stderr and the run record (own process)', async () => {
    const img = file('ud2.bin', [0x0f, 0x0b]);
    const j = join(dir, 'tf.json');
    const r = await spawnVirtlab('exec', img, '--flat', '0x100000', '--json', j);
    expect(r.status).toBe(2);
    expectOneLine(r.stderr, /^virtlab: .*ud2\.bin: triple fault \(the guest's outcome\): .*#UD/);
    const rec = JSON.parse(readFileSync(j, 'utf8'));
    expect(rec.exit.reason).toBe('triple-fault');
    expect(rec.exitStatus).toBe(2);
  });

  it('reports an unsupported instruction with its address and disassembly', () => {
    // MOV DR7 enabling a breakpoint: debug-register breakpoints are not implemented.
    const img = file('dr7.bin', [0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x23, 0xf8]);
    const j = join(dir, 'unsup.json');
    const r = virtlab('exec', img, '--flat', '0x200000', '--json', j);
    expect(r.status).toBe(2);
    expectOneLine(r.stderr, /unsupported instruction at 0x00200005: mov dr7,eax \(bytes 0f 23 f8\): /);
    const rec = JSON.parse(readFileSync(j, 'utf8'));
    expect(rec.exit).toMatchObject({ reason: 'unsupported', address: 0x200005, bytes: '0f 23 f8', disassembly: 'mov dr7,eax' });
  });

  it.each([
    ['a missing file', () => [join(dir, 'missing.elf')], /^virtlab: .*missing\.elf: no such file$/],
    ['a file that is not ELF', () => [file('junk.bin', 'just text')], /junk\.bin: not an ELF file and no multiboot header in the first 8192 bytes \(a raw binary needs --flat ADDR\)$/],
    ['an ELF64 image', () => [file('x64.elf', buildElf32({ entry: 0, segments: [{ paddr: 0x100000, data: [0] }], cls: 2, machine: 62 }))], /x64\.elf: ELF64 x86-64 image/],
    ['a lying multiboot header', () => [file('lie.elf', buildElf32({ entry: 0x100000, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0, undefined, 5), [0xf4]) }] }))], /lie\.elf: multiboot header at offset 0x60: bad checksum/],
    ['a segment outside RAM', () => [hello, '--memory', '1'], /hello\.elf: program header 0 .*lies outside RAM \(1 MiB/],
    ['an unknown option', () => [hello, '--bogus'], /^virtlab: Unknown option '--bogus'/],
    ['a bad number', () => [hello, '--max-instructions', 'lots'], /--max-instructions: expected an integer/],
  ])('fails on %s with one line and status 2', (_what, args, re) => {
    const r = virtlab('exec', ...args());
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr.split('\n')[0]).toMatch(re);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it.concurrent('fails on an invalid profile, naming the bad fields (own process: no stack trace)', async () => {
    const prof = JSON.parse(readFileSync(join(ROOT, 'src/profiles/p6-provisional.json'), 'utf8'));
    prof.classes.mov.value = 'fast';
    delete prof.tlb.dtlb;
    const p = file('bad-profile.json', JSON.stringify(prof));
    const r = await spawnVirtlab('exec', hello, '--profile', p);
    expect(r.status).toBe(2);
    expectOneLine(r.stderr, /bad-profile\.json: invalid profile: .*classes\.mov\.value: .*tlb\.dtlb: /);
  });

  it.concurrent('lists its commands with --help', async () => {
    const r = await spawnVirtlab('--help');
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toMatch(/exec <image>/);
    const e = virtlab('exec', '--help');
    expect(e.status).toBe(0);
    expect(e.stdout.toString()).toMatch(/--max-instructions N/);
  });
});
