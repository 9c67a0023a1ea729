/**
 * The workload suite: every workload runs to completion natively with small parameters and
 * prints the checksum computed here, independently, in TypeScript (from the parameters, or
 * by re-running the workload's algorithm over the same disk image / received frames);
 * nanobenchmarks report a positive cycles-per-op; the listing and bad-input errors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, type CliIo } from '../../src/cli/main.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { WORKLOAD_GUESTS } from '../../src/guest/workloads/guests.js';
import { WORKLOADS, WorkloadError, buildWorkload } from '../../src/guest/workloads/index.js';
import { Machine } from '../../src/machine/machine.js';
import type { DeviceInput } from '../../src/machine/devices/device-io.js';
import { disassembleAll } from '../../src/x86/pvop.js';
import { profile, runKernel } from './kernel-harness.js';
import { BENCH_OP, SYS_BENCH, benchSyscall } from '../../src/guest/workloads/kernel-bench.js';
import { eax, ebx, ecx, edx, dword } from '../../src/x86/operands.js';

// ---- an independent checksum (FNV-1a-style over 32-bit words, as docs/workloads.md defines it)
const fnvStep = (h: number, v: number): number => Math.imul((h ^ v) >>> 0, 16777619) >>> 0;
const ck = (...values: number[]): string => {
  let h = 2166136261;
  for (const v of values) h = fnvStep(h, v >>> 0);
  return '0x' + h.toString(16).padStart(8, '0');
};
const sum = (from: number, to: number, f: (i: number) => number = (i) => i): number => {
  let s = 0;
  for (let i = from; i < to; i++) s = (s + f(i)) >>> 0;
  return s;
};
const fnvBytes = (h: number, bytes: Uint8Array): number => {
  for (const b of bytes) h = fnvStep(h, b);
  return h;
};

interface Run {
  console: string;
  exitCode: number | null;
  checksum: string | null;
  benches: { name: string; ops: number; cycles: number; perOp: number }[];
  machine: Machine;
  diskBefore: Uint8Array | null;
  arrivals: Uint8Array[];
}

function run(name: string, params: Record<string, string> = {}): Run {
  const b = buildWorkload(name, params);
  const m = new Machine({ profile, memoryMiB: 64, disk: b.machine.disk, nic: b.machine.nic });
  const diskBefore = b.machine.disk?.image ? b.machine.disk.image.slice() : null;
  const arrivals: Uint8Array[] = [];
  if (m.nic) m.nic.link.onInput = (i: DeviceInput) => { if (i.data) arrivals.push(i.data.slice()); };
  m.loadMultiboot(toMultibootElf(b.image), `${name}.elf`);
  const o = m.run({ maxInstructions: b.maxInstructions });
  const text = m.console.text();
  const benches = [...text.matchAll(/^bench: name=(\S+) ops=(\d+) cycles=(\d+) cycles_per_op=(\d+)$/gm)]
    .map((x) => ({ name: x[1]!, ops: Number(x[2]), cycles: Number(x[3]), perOp: Number(x[4]) }));
  return {
    console: text,
    exitCode: o.exit.reason === 'exit-device' ? (o.exit.code - 1) / 2 : null,
    checksum: /^checksum: (0x[0-9a-f]{8})$/m.exec(text)?.[1] ?? null,
    benches, machine: m, diskBefore, arrivals,
  };
}

/** Runs a workload and checks: exit 0, the expected checksum, bench lines with ops and a plausible cycles/op. */
function expectRun(name: string, params: Record<string, string>, checksum: string, ops: number, perOp: [number, number]): Run {
  const r = run(name, params);
  expect(r.console, r.console).not.toMatch(/failed|killed|panic/);
  expect(r.exitCode, r.console).toBe(0);
  expect(r.checksum).toBe(checksum);
  expect(r.benches.length).toBeGreaterThanOrEqual(1);
  const b = r.benches[0]!;
  expect(b.ops).toBe(ops);
  expect(b.perOp).toBe(Math.floor(b.cycles / b.ops));
  expect(b.perOp).toBeGreaterThanOrEqual(perOp[0]);
  expect(b.perOp).toBeLessThanOrEqual(perOp[1]);
  return r;
}

describe('nanobenchmarks (ASPLOS 2006)', () => {
  it('syscall: getpid round trips by int 0x80 and by SYSENTER', () => {
    const a = expectRun('syscall', { n: '300' }, ck(300), 300, [50, 5000]);
    const b = expectRun('syscall', { n: '300', path: 'sysenter' }, ck(300), 300, [50, 5000]);
    expect(a.machine.cpu).not.toBe(b.machine.cpu);
    // SYSENTER skips the IDT gate and the iret: cheaper per call on a P6.
    expect(b.benches[0]!.perOp).toBeLessThan(a.benches[0]!.perOp);
  });

  it('in: a port read in the kernel, ~ the profile\'s I/O cost', () => {
    expectRun('in', { n: '200' }, ck(255 * 200), 200, [20, 5000]);
  });

  it('callret, pgfault, divzero, ptemod', () => {
    expectRun('callret', { n: '1000' }, ck(1000), 1000, [1, 100]);
    expectRun('pgfault', { n: '300' }, ck(sum(0, 300)), 300, [500, 100_000]);
    expectRun('divzero', { n: '100' }, ck(100), 100, [20, 5000]);
    const flags = sum(0, 101, (i) => (i % 2 === 0 ? 7 : 5)); // P|U|W, then W toggled
    const f = expectRun('ptemod', { n: '101' }, ck(flags), 101, [2, 5000]);
    const nf = expectRun('ptemod', { n: '101', flush: '0' }, ck(flags), 101, [1, 5000]);
    expect(nf.benches[0]!.perOp).toBeLessThan(f.benches[0]!.perOp);
  });
});

// The cr8wr checksum depends on the mask the kernel programs: check it against the PIC model.
describe('cr8wr checksums', () => {
  it('pic: Σ of the mask written (the master PIC\'s IMR), cli: n', () => {
    const r = run('cr8wr', { n: '150' });
    const imr = r.machine.pic.master.imr;
    expect(r.exitCode).toBe(0);
    expect(r.checksum).toBe(ck(imr * 150));
    expect(r.benches[0]!.name).toBe('cr8wr-pic');
    const c = run('cr8wr', { n: '150', via: 'cli' });
    expect(c.checksum).toBe(ck(150));
    expect(c.benches[0]!.name).toBe('cr8wr-cli');
  });
});

describe('lmbench-style', () => {
  it('null call, null I/O', () => {
    expectRun('null-call', { n: '200' }, ck(200), 200, [50, 5000]);
    expectRun('null-io', { n: '200' }, ck(0, 200), 200, [100, 10_000]);
  });

  it('forkwait and fork+exec', () => {
    expectRun('forkwait', { n: '6' }, ck(sum(0, 6)), 6, [5_000, 10_000_000]);
    expectRun('fork-exec', { n: '5' }, ck(sum(0, 5, (j) => 2 + j)), 5, [5_000, 10_000_000]);
  });

  it('context switch: a pipe ring and sched_yield, 2..15 processes', () => {
    expectRun('ctxsw', { procs: '2', n: '50' }, ck(100, 1), 100, [100, 100_000]);
    expectRun('ctxsw', { procs: '5', n: '20' }, ck(100, 10), 100, [100, 100_000]);
    expectRun('ctxsw', { procs: '15', n: '5', via: 'yield' }, ck(105, 5), 75, [100, 100_000]);
  });

  it('page fault (copy-on-write, demand-zero) and mmap/munmap', () => {
    expectRun('pagefault', { n: '40' }, ck(sum(0, 40, (i) => i + 1), sum(0, 40)), 40, [500, 200_000]);
    expectRun('pagefault', { n: '40', kind: 'zero' }, ck(sum(0, 40)), 40, [500, 200_000]);
    expectRun('mmap', { n: '10', pages: '3' }, ck(sum(0, 10, (i) => i * 4)), 10, [1_000, 10_000_000]);
  });

  it('ping-pong over pipes and with the NIC echo peer give the same token sequence', () => {
    const toks: number[] = [];
    let t = 0;
    for (let i = 0; i < 30; i++) { t = (Math.imul(t, 3) + 1) >>> 0; toks.push(t); }
    expectRun('pingpong', { n: '30' }, ck(...toks, 0), 30, [200, 1_000_000]);
    const net = expectRun('pingpong', { n: '30', via: 'net', delay: '5000' }, ck(...toks, 0), 30, [5000, 1_000_000]);
    expect(net.machine.nic!.link.transmittedFrames.length).toBe(30);
  });
});

describe('macro mixes (Xen 2003)', () => {
  it('compile: make -j2 of 5 jobs; statuses and object sectors match a TypeScript build', () => {
    const jobs = 5, sectors = 2, rounds = 3;
    const r = run('compile', { jobs: String(jobs), sectors: String(sectors), rounds: String(rounds), parallel: '2', seed: '7' });
    expect(r.exitCode, r.console).toBe(0);
    let total = 0;
    for (let j = 0; j < jobs; j++) {
      const src = r.diskBefore!.slice(j * sectors * 512, (j + 1) * sectors * 512);
      let h = 2166136261;
      for (let k = 0; k < rounds; k++) {
        for (let i = 0; i < src.length; i++) { h = fnvStep(h, src[i]!); src[i] = h & 0xff; }
      }
      total = (total + h) >>> 0;
      const obj = r.machine.disk!.disk.image.subarray((jobs * sectors + j) * 512, (jobs * sectors + j + 1) * 512);
      expect(Buffer.from(obj).equals(Buffer.from(src.subarray(0, 512))), `object of job ${j}`).toBe(true);
    }
    expect(r.checksum).toBe(ck(total, jobs));
    expect(r.benches[0]!.ops).toBe(jobs);
  });

  it('web: each received request is hashed and answered; checksum and replies match', () => {
    /** Checks every reply against the request it answers (found by its sequence number); returns the served sequence numbers. */
    const check = (r: Run, requests: number): number[] => {
      expect(r.exitCode, r.console).toBe(0);
      const bySeq = new Map(r.arrivals.map((f) => [new DataView(f.buffer, f.byteOffset).getUint32(14), f]));
      const replies = r.machine.nic!.link.transmittedFrames;
      expect(replies.length).toBe(requests);
      const words: number[] = [], seqs: number[] = [];
      for (const reply of replies) {
        const seq = new DataView(reply.buffer, reply.byteOffset).getUint32(14);
        const f = bySeq.get(seq)!;
        expect(f, `request ${seq}`).toBeDefined();
        const h = fnvBytes(2166136261, f.subarray(18));
        words.push(seq, h); seqs.push(seq);
        const bodyLen = 64 + (h & 0xff);
        expect(reply.length).toBe(22 + bodyLen);
        expect([...reply.subarray(0, 6)]).toEqual([...f.subarray(6, 12)]);
        expect([reply[12], reply[13]]).toEqual([0x88, 0xb6]);
        expect(new DataView(reply.buffer, reply.byteOffset).getUint32(18, true)).toBe(h);
        expect(reply[22 + bodyLen - 1]).toBe((h + bodyLen - 1) & 0xff);
      }
      expect(r.checksum).toBe(ck(...words));
      return seqs;
    };
    const r = run('web', { requests: '12', interarrival: '50000', maxbytes: '300', seed: '3' });
    expect(r.machine.nic!.counters.rxDropped).toBe(0);
    expect(check(r, 12)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // Overload: the receive ring overflows and the NIC drops frames; the server still answers
    // the first 12 it gets, and the run ends.
    const o = run('web', { requests: '12', interarrival: '1000', seed: '3' });
    expect(o.machine.nic!.counters.rxDropped).toBeGreaterThan(0);
    const seqs = check(o, 12);
    expect(seqs[11]).toBeGreaterThan(12);
  });

  it('database: the checksum and the final disk equal a TypeScript replay of the transactions', () => {
    const txns = 30, dbsize = 64, writes = 50, seed = 11;
    const r = run('database', { txns: String(txns), dbsize: String(dbsize), writes: String(writes), seed: String(seed) });
    expect(r.exitCode, r.console).toBe(0);
    const db = r.diskBefore!.slice();
    const dv = new DataView(db.buffer);
    let x = seed >>> 0;
    const hs: number[] = [];
    let wrote = 0;
    for (let t = 0; t < txns; t++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const lba = (x >>> 8) % dbsize;
      const h = fnvBytes(2166136261, db.subarray(lba * 512, lba * 512 + 512));
      hs.push(h);
      if (((x >>> 4) % 100) < writes) {
        const off = lba * 512 + ((x >>> 16) & 127) * 4;
        dv.setUint32(off, (dv.getUint32(off, true) + h) >>> 0, true);
        wrote++;
      }
    }
    expect(wrote).toBeGreaterThan(0);
    expect(r.checksum).toBe(ck(...hs));
    expect(Buffer.from(r.machine.disk!.disk.image).equals(Buffer.from(db))).toBe(true);
  });

  it('compute: random read-modify-writes over the working set', () => {
    const pages = 32, accesses = 3000, seed = 5;
    const nd = pages * 1024;
    const mem = new Uint32Array(nd);
    let x = seed;
    for (let i = 0; i < nd; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; mem[i] = x; }
    let h = 2166136261;
    for (let t = 0; t < accesses; t++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const i = (x >>> 8) % nd;
      h = fnvStep(h, mem[i]!);
      mem[i] = (mem[i]! + x) >>> 0;
    }
    expectRun('compute', { pages: String(pages), accesses: String(accesses), seed: String(seed) }, ck(h), accesses, [5, 10_000]);
  });
});

describe('the bench system call', () => {
  it('runs the empty loop, and refuses a bad op, n = 0 and a kernel pointer', () => {
    const r = runKernel({
      init: 'b', extraSyscalls: [benchSyscall],
      programs: [{
        name: 'b', build: (u) => {
          const a = u.a;
          const out = a.label('out');
          a.section('data'); a.bind(out); a.dd(0, 0, 0); a.section('text');
          const call = (op: number, n: number, ptr: number | typeof out): void => {
            a.mov(ebx, op); a.mov(ecx, n); a.mov(edx, ptr); u.sys(SYS_BENCH);
            a.neg(eax); u.printDec(); u.print(' ');
          };
          call(BENCH_OP.null, 123, out);
          a.mov(eax, dword(out.plus(8))); u.printDec(); u.print(' ');
          a.mov(eax, dword(out)); a.test(eax, eax); const ok = a.label(); a.jnz(ok); u.print('zero-cycles '); a.bind(ok);
          call(99, 5, out);
          call(BENCH_OP.in, 0, out);
          call(BENCH_OP.in, 5, 0xc000_0000);
          u.print('\n');
          u.exit(0);
        },
      }],
    });
    expect(r.exitCode).toBe(0);
    expect(r.console).toContain('\n0 123 22 22 14 \n'); // 0, checksum n, -EINVAL, -EINVAL, -EFAULT
  });
});

describe('the suite', () => {
  it('every privileged instruction of a workload kernel (the bench system call included) is in a pv-op site', () => {
    const image = buildWorkload('ptemod', {}).image;
    const privileged = /^(cli|sti|hlt|in |out |lgdt|lidt|ltr|invlpg|mov cr\d|mov \w+,cr\d|iretd?|sysexit|wrmsr|rdmsr|rdtsc|pushfd?|popfd?)\b/;
    const inSite = (addr: number): boolean => image.pvopSites.some((s) => addr >= s.addr && addr < s.addr + s.len);
    const bench = image.symbols.find((s) => s.name === 'sys_bench');
    expect(bench).toBeDefined();
    let benchSites = 0;
    const outside: string[] = [];
    for (const seg of image.segments) {
      if ((seg.flags & 1) === 0) continue;
      for (const ins of disassembleAll(seg.bytes, seg.vaddr, 32)) {
        if (!privileged.test(ins.text)) continue;
        if (!inSite(ins.address)) outside.push(`${ins.address.toString(16)}: ${ins.text}`);
        else if (ins.address > bench!.addr) benchSites++;
      }
    }
    expect(outside).toEqual([]);
    expect(benchSites).toBeGreaterThanOrEqual(12);
    expect(new Set(image.pvopSites.map((s) => s.kind)).has('read-tsc')).toBe(true);
  });

  it('is deterministic: the same workload twice gives the same output and cycles', () => {
    const a = run('database', { txns: '5', dbsize: '16' });
    const b = run('database', { txns: '5', dbsize: '16' });
    expect(a.console).toBe(b.console);
    expect(a.machine.cpu.cycles).toBe(b.machine.cpu.cycles);
  });

  it('virtlab workloads lists every workload with its parameters; --json too', () => {
    const out = cli(['workloads']);
    expect(out.status).toBe(0);
    for (const w of WORKLOADS) {
      expect(out.stdout).toMatch(new RegExp(`^  ${w.name} +\\S`, 'm'));
      for (const k of Object.keys(w.params)) expect(out.stdout).toContain(`      ${k}=`);
    }
    const j = cli(['workloads', '--json']);
    const list = JSON.parse(j.stdout) as { name: string; params: Record<string, unknown> }[];
    expect(list.map((w) => w.name)).toEqual(WORKLOADS.map((w) => w.name));
    expect(WORKLOADS.length).toBe(19);
  });

  it('virtlab exec workload:NAME --param k=v runs it (exit status 1: the guest wrote 0 to port 0xF4)', () => {
    const r = cli(['exec', 'workload:syscall', '--param', 'n=50', '--param', 'path=sysenter']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`checksum: ${ck(50)}\n`);
    expect(r.status).toBe(1);
    // Without --max-instructions the workload's own budget applies (a hang stops early).
    const dir = mkdtempSync(join(tmpdir(), 'virtlab-wl-'));
    try {
      const j = cli(['exec', 'workload:syscall', '--param', 'n=50', '--json', join(dir, 'run.json')]);
      expect(j.status).toBe(1);
      const rec = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { limits: { maxInstructions: number }; image: { path: string } };
      expect(rec.image.path).toBe('workload:syscall');
      expect(rec.limits.maxInstructions).toBe(buildWorkload('syscall', { n: '50' }).maxInstructions);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad input: one line naming what exists, status 2', () => {
    const cases: [string[], RegExp][] = [
      [['exec', 'workload:nosuch'], /unknown workload "nosuch" \(workloads: syscall, in, cr8wr, .*compute\)/],
      [['exec', 'workload:syscall', '--param', 'count=3'], /workload syscall: unknown parameter "count" \(parameters: n=1\.\.10000000, path=int80\|sysenter\)/],
      [['exec', 'workload:syscall', '--param', 'n=0'], /n="0" is not an integer in 1\.\.10000000/],
      [['exec', 'workload:syscall', '--param', 'n=ten'], /n="ten" is not an integer/],
      [['exec', 'workload:cr8wr', '--param', 'via=apic'], /via="apic" is not one of pic, cli/],
      [['exec', 'workload:ctxsw', '--param', 'procs=16'], /procs="16" is not an integer in 2\.\.15/],
      [['exec', 'workload:ctxsw', '--param', 'procs=9'], /needs 9 pipes, the kernel has 8/],
      [['exec', 'workload:mmap', '--param', 'n=100000', '--param', 'pages=1024'], /exceeds the \d+ pages of the mmap area/],
      [['exec', 'workload:syscall', '--param', 'n'], /--param: expected k=v, got "n"/],
      [['exec', 'nofile.elf', '--param', 'n=1'], /--param is for workload:NAME images/],
      [['workloads', '--bogus'], /workloads: /],
    ];
    for (const [argv, msg] of cases) {
      const r = cli(argv);
      expect(r.status, argv.join(' ')).toBe(2);
      const first = r.stderr.split('\n')[0]!;
      expect(first, argv.join(' ')).toMatch(msg);
      expect(first.startsWith('virtlab: ')).toBe(true);
    }
    expect(() => buildWorkload('syscall', { n: '-1' })).toThrow(WorkloadError);
  });

  it('workloads as build-guest builders (workload-NAME)', () => {
    for (const w of WORKLOADS) expect(WORKLOAD_GUESTS[`workload-${w.name}`]?.description).toBe(w.description);
    const img = WORKLOAD_GUESTS['workload-divzero']!.build({ n: '7' });
    expect(img.metadata.workload).toBe('divzero');
    expect(img.metadata.params).toEqual({ n: 7 });
  });
});

function cli(argv: string[]): { status: number; stdout: string; stderr: string } {
  let stdout = '', stderr = '';
  const io: CliIo = {
    stdout: (b) => { stdout += typeof b === 'string' ? b : Buffer.from(b).toString('latin1'); },
    stderr: (s) => { stderr += s; },
  };
  const status = main(argv, io);
  return { status, stdout, stderr };
}
