/**
 * Macro workloads modelled on the application set of Barham et al., "Xen and the Art of
 * Virtualization" (SOSP 2003): a build (many short processes, exec, file reads, compute),
 * a web server (packets in, parsing, system calls, packets out), a database (random block
 * reads and writes, compute) and a compute-bound kernel over a large working set (TLB
 * pressure). Each is small enough to emulate, keeps the mix of kernel paths, and computes
 * a checksum that tests reproduce in TypeScript (docs/workloads.md gives the algorithms).
 */
import { al, ax, bl, eax, ebp, ebx, ecx, edi, edx, esi, byte, dword, word } from '../../x86/operands.js';
import { SYS } from '../kernel/layout.js';
import { MAX_USER_PROCS } from './lmbench.js';
import { wlProgram } from './nano.js';
import { int, seededBytes, type WorkloadDef } from './registry.js';
import { CK_BASIS, CK_PRIME, type Wl } from './runtime.js';

/** LCG constants (Numerical Recipes) used by the database and compute workloads. */
export const LCG_A = 1664525, LCG_C = 1013904223;
/** Ethertype of the web server's replies. */
export const WEB_REPLY_TYPE = 0x88b6;

const seed = int('seed of the input data (disk image, arrivals)', 1, 0, 0xffff_ffff);

/** h = (h ^ byte[src + k]) * prime over `count` bytes (ECX = count, ESI = src); h in EBX. Clobbers EAX, ECX, ESI. */
function fnvBytes(w: Wl, writeBack: boolean): void {
  const a = w.a;
  const loop = a.label(), done = a.label();
  a.test(ecx, ecx); a.jz(done);
  a.bind(loop);
  a.movzx(eax, byte(esi));
  a.xor(ebx, eax);
  a.imul(ebx, ebx, CK_PRIME);
  if (writeBack) a.mov(byte(esi), bl); // the compiler's "output": the low byte of h replaces the input byte
  a.inc(esi);
  a.dec(ecx); a.jnz(loop);
  a.bind(done);
}

export const MACRO: readonly WorkloadDef[] = [
  {
    name: 'compile', group: 'macro',
    description: 'build-like: make forks jobs that exec a compiler, which reads its source from disk, computes, writes an object',
    params: {
      jobs: int('compiler processes run in total', 16, 1, 1000),
      parallel: int('jobs running at once (make -j)', 2, 1, MAX_USER_PROCS - 1),
      sectors: int('source size per job, in 512-byte sectors', 4, 1, 8),
      rounds: int('compute passes over each source', 4, 1, 64),
      seed,
    },
    build: (p) => {
      const jobs = p.jobs as number, parallel = p.parallel as number, sectors = p.sectors as number, rounds = p.rounds as number;
      const objBase = jobs * sectors;
      const cc = wlProgram('mc-cc', (w) => {
        const a = w.a, u = w.u;
        const buf = w.bss('src', 4096);
        u.sys(SYS.getpid);
        a.lea(ebp, dword(eax, -2)); // job number: make's children get pids 2, 3, … in fork order
        a.imul(ebx, ebp, sectors); a.mov(ecx, buf); a.mov(edx, sectors); u.sys(SYS.blk_read);
        w.checkResult('blk_read');
        a.mov(ebx, CK_BASIS);
        a.mov(edi, rounds);
        const round = a.here();
        a.mov(esi, buf); a.mov(ecx, sectors * 512);
        fnvBytes(w, true);
        a.dec(edi); a.jnz(round);
        a.mov(edi, ebx);
        a.lea(ebx, dword(ebp, objBase)); a.mov(ecx, buf); a.mov(edx, 1); u.sys(SYS.blk_write);
        w.checkResult('blk_write');
        u.exit(edi);
      });
      const make = wlProgram('mc-make', (w) => {
        const a = w.a, u = w.u;
        const status = w.data('status', 0), sum = w.data('sum', 0);
        const name = w.str('mc-cc');
        const child = a.label('child'), drain = a.label(), done = a.label(), spawn = a.label();
        const reap = (): void => {
          a.mov(ebx, -1); a.mov(ecx, status); u.sys(SYS.waitpid); w.checkResult('waitpid');
          a.mov(eax, dword(status)); a.add(dword(sum), eax);
          a.dec(esi);
        };
        w.tscStart();
        a.xor(edi, edi); a.xor(esi, esi);
        const loop = a.here();
        a.cmp(edi, jobs); a.jae(drain);
        a.cmp(esi, parallel); a.jb(spawn);
        reap();
        a.bind(spawn);
        u.sys(SYS.fork); a.test(eax, eax); a.jz(child); w.checkResult('fork');
        a.inc(esi); a.inc(edi);
        a.jmp(loop);
        a.bind(drain);
        a.test(esi, esi); a.jz(done);
        reap();
        a.jmp(drain);
        a.bind(done);
        w.tscStop();
        w.report('compile', jobs);
        a.mov(eax, dword(sum)); w.mix(eax);
        w.mixConst(jobs);
        w.finishOk();
        a.bind(child);
        a.mov(ebx, name); u.sys(SYS.execve);
        w.fail('execve');
      });
      const disk = new Uint8Array((objBase + jobs) * 512);
      disk.set(seededBytes(p.seed as number, objBase * 512));
      return {
        programs: [make, cc], init: 'mc-make',
        machine: { disk: { image: disk, seed: p.seed as number } },
        maxInstructions: 10_000_000 + jobs * (300_000 + rounds * sectors * 512 * 8),
      };
    },
  },
  {
    name: 'web', group: 'macro',
    description: 'web-server-like: receives Poisson-arriving requests, parses (hashes) them, answers each with a reply frame',
    params: {
      requests: int('requests served: the server answers the first this-many frames it receives', 64, 1, 100_000),
      interarrival: int('mean cycles between request arrivals', 200_000, 1_000, 1_000_000_000),
      maxbytes: int('largest request frame, bytes (smallest: 60)', 512, 60, 1514),
      start: int('cycle of the first arrival\'s earliest time (frames before the driver is up are dropped)', 10_000_000, 0, 1_000_000_000_000),
      seed,
    },
    build: (p) => {
      const requests = p.requests as number;
      const server = wlProgram('mc-web', (w) => {
        const a = w.a, u = w.u;
        const rbuf = w.bss('rbuf', 2048), tbuf = w.bss('tbuf', 2048);
        a.mov(edi, requests);
        const loop = a.here();
        a.mov(ebx, rbuf); a.mov(ecx, 2048); u.sys(SYS.net_recv);
        w.checkResult('net_recv');
        a.mov(ebp, eax); // frame length
        // Timed from the first request in (not from boot: the stream starts at \`start\`).
        const timing = a.label();
        a.cmp(edi, requests); a.jne(timing);
        w.tscStart();
        a.bind(timing);
        // Parse: the sequence number (big-endian at 14) and a hash of the payload (from 18).
        a.mov(eax, dword(rbuf.plus(14))); a.bswap(eax);
        w.mix(eax);
        a.mov(ebx, CK_BASIS);
        a.lea(ecx, dword(ebp, -18)); a.mov(esi, rbuf.plus(18));
        fnvBytes(w, false);
        w.mix(ebx);
        u.sys(SYS.getpid); // a per-request system call, as a server's stat/accept would be
        // Reply: to the requester, ethertype 0x88B6, the sequence number, the hash, and
        // 64 + (hash & 255) bytes of body (byte k = (hash + k) & 0xFF).
        a.mov(eax, dword(rbuf.plus(6))); a.mov(dword(tbuf), eax);
        a.mov(ax, word(rbuf.plus(10))); a.mov(word(tbuf.plus(4)), ax);
        a.mov(word(tbuf.plus(12)), ((WEB_REPLY_TYPE & 0xff) << 8) | (WEB_REPLY_TYPE >> 8));
        a.mov(eax, dword(rbuf.plus(14))); a.mov(dword(tbuf.plus(14)), eax);
        a.mov(dword(tbuf.plus(18)), ebx);
        a.movzx(ecx, bl); a.add(ecx, 64);
        a.mov(esi, ecx); // body length
        a.mov(edx, tbuf.plus(22));
        a.mov(eax, ebx);
        const body = a.here();
        a.mov(byte(edx), al);
        a.inc(eax); a.inc(edx);
        a.dec(ecx); a.jnz(body);
        a.lea(ecx, dword(esi, 22)); a.mov(ebx, tbuf); u.sys(SYS.net_send);
        w.checkResult('net_send');
        a.dec(edi); a.jnz(loop);
        w.tscStop();
        w.report('web', requests);
        w.finishOk();
      });
      return {
        programs: [server], init: 'mc-web',
        machine: { nic: { seed: p.seed as number, arrivals: { meanInterarrivalCycles: p.interarrival as number, minBytes: 60, maxBytes: p.maxbytes as number, startCycle: p.start as number } } },
        maxInstructions: 10_000_000 + requests * 50_000,
      };
    },
  },
  {
    name: 'database', group: 'macro',
    description: 'database-like: transactions read a random block, hash it, and update a record in place (some fraction)',
    params: {
      txns: int('transactions', 200, 1, 1_000_000),
      dbsize: int('database size in 512-byte sectors', 1024, 16, 65_536),
      writes: int('percentage of transactions that write their block back', 50, 0, 100),
      seed,
    },
    build: (p) => {
      const txns = p.txns as number, dbsize = p.dbsize as number, writes = p.writes as number;
      const prog = wlProgram('mc-db', (w) => {
        const a = w.a, u = w.u;
        const buf = w.bss('block', 512);
        const lba = w.data('lba', 0), x = w.data('x', (p.seed as number) >>> 0);
        w.tscStart();
        a.mov(edi, txns);
        const loop = a.here(), noWrite = a.label();
        a.mov(eax, dword(x)); a.imul(eax, eax, LCG_A); a.add(eax, LCG_C); a.mov(dword(x), eax);
        a.shr(eax, 8); a.xor(edx, edx); a.mov(ecx, dbsize); a.div(ecx);
        a.mov(dword(lba), edx);
        a.mov(ebx, edx); a.mov(ecx, buf); a.mov(edx, 1); u.sys(SYS.blk_read);
        w.checkResult('blk_read');
        a.mov(ebx, CK_BASIS); a.mov(esi, buf); a.mov(ecx, 512);
        fnvBytes(w, false);
        w.mix(ebx);
        a.mov(eax, dword(x)); a.shr(eax, 4); a.xor(edx, edx); a.mov(ecx, 100); a.div(ecx);
        a.cmp(edx, writes); a.jae(noWrite);
        a.mov(eax, dword(x)); a.shr(eax, 16); a.and(eax, 127);
        a.add(dword({ index: eax, scale: 4, disp: buf }), ebx);
        a.mov(ebx, dword(lba)); a.mov(ecx, buf); a.mov(edx, 1); u.sys(SYS.blk_write);
        w.checkResult('blk_write');
        a.bind(noWrite);
        a.dec(edi); a.jnz(loop);
        w.tscStop();
        w.report('database', txns);
        w.finishOk();
      });
      return {
        programs: [prog], init: 'mc-db',
        machine: { disk: { image: seededBytes(p.seed as number, dbsize * 512), seed: p.seed as number } },
        maxInstructions: 10_000_000 + txns * 40_000,
      };
    },
  },
  {
    name: 'compute', group: 'macro',
    description: 'compute-bound: random read-modify-writes over a large anonymous working set (TLB pressure)',
    params: {
      pages: int('working set in 4 KiB pages', 1024, 16, 4096),
      accesses: int('random accesses timed', 100_000, 1, 100_000_000),
      seed,
    },
    build: (p) => {
      const pages = p.pages as number, accesses = p.accesses as number, nd = pages * 1024;
      const prog = wlProgram('mc-compute', (w) => {
        const a = w.a, u = w.u;
        a.xor(ebx, ebx); a.mov(ecx, pages * 4096); a.mov(edx, 3); u.sys(SYS.mmap2);
        w.checkResult('mmap');
        a.mov(ebp, eax);
        // Fill: a[i] = x after each LCG step (x starts at the seed).
        a.mov(eax, (p.seed as number) >>> 0);
        a.xor(ecx, ecx);
        const fill = a.here();
        a.imul(eax, eax, LCG_A); a.add(eax, LCG_C);
        a.mov(dword({ base: ebp, index: ecx, scale: 4 }), eax);
        a.inc(ecx); a.cmp(ecx, nd); a.jb(fill);
        a.mov(esi, eax); // x
        a.mov(ebx, CK_BASIS); // h
        a.push(esi);
        w.tscStart();
        a.pop(esi);
        a.mov(edi, accesses);
        a.mov(ecx, nd);
        const loop = a.here();
        a.imul(esi, esi, LCG_A); a.add(esi, LCG_C);
        a.mov(eax, esi); a.shr(eax, 8); a.xor(edx, edx); a.div(ecx);
        a.mov(eax, dword({ base: ebp, index: edx, scale: 4 }));
        a.xor(ebx, eax); a.imul(ebx, ebx, CK_PRIME);
        a.add(eax, esi);
        a.mov(dword({ base: ebp, index: edx, scale: 4 }), eax);
        a.dec(edi); a.jnz(loop);
        w.tscStop();
        w.report('compute', accesses);
        w.mix(ebx);
        w.finishOk();
      });
      return { programs: [prog], init: 'mc-compute', machine: {}, maxInstructions: 10_000_000 + nd * 8 + accesses * 40 };
    },
  },
];
