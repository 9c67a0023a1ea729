// Kernel-level generated guests (docs/verification.md, "kernel-equivalence" and
// "pv-resource-control"): actions emitted with pv-op sites as a system call of the virtlab
// kernel, so the same image runs natively, under full/hw and under pv (patched). A kernel
// build costs about 0.2 s and a run 50–150 ms, so the properties run here with few programs.
import { describe, expect, it } from 'vitest';
import {
  buildKernelGuest, kernelSensitiveProbe, kernelDifference, kernelEquivalenceCheck, kernelListing, KERNEL_EQ_CONFIGS, replayKernelCase, runKernelGuest, runKernelMapped, runKernelPv,
  type KernelGuestProgram,
} from '../../src/verify/kernel-program.js';
import { runProperty } from '../../src/verify/properties.js';
import { withMutant } from '../../src/vmm/mutants.js';

const hex8 = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');
/** Word `w` of playground frame `i` as the harness fills it (seed imul(i+1, 0x2545f491), then add φ·2³², rol 7). */
function pattern(i: number, w: number): number {
  let v = Math.imul(i + 1, 0x2545f491) >>> 0;
  for (let j = 0; j < w; j++) { v = (v + 0x9e3779b9) >>> 0; v = ((v << 7) | (v >>> 25)) >>> 0; }
  return v;
}

const wellFormed: KernelGuestProgram = {
  regs: [1, 2, 3, 4, 5, 6, 7], hostile: false,
  items: [
    // Window page 1 of table A := frame 5, present and writable; read word 2 of it; write it to page 2.
    { op: 'kpte', t: 0, page: 1, frame: { k: 'pg', i: 5 }, flags: 3 },
    { op: 'krd', d: 'ebx', page: 1, off: 8 },
    { op: 'kwr', s: 'ebx', page: 2, off: 16 },
    { op: 'krdpte', t: 0, page: 1, d: 'eax' },
    { op: 'kcr3', t: 1 },
    { op: 'krd', d: 'ecx', page: 0, off: 4 },
    { op: 'kpushf', d: 'edx' }, { op: 'ksti' }, { op: 'kpushf', d: 'esi' }, { op: 'kcli' },
    { op: 'kin', d: 'edi', port: 0x21 },
    { op: 'kunlink', t: 0 }, { op: 'klink', t: 0 }, { op: 'kcr3', t: 0 },
  ],
};

describe('kernel-level harness', () => {
  it('a well-formed program reads what it mapped, sees its entries by role, and gives the same outcome in every configuration', { timeout: 30_000 }, () => {
    const image = buildKernelGuest(wellFormed);
    const ref = runKernelGuest(image, 'native');
    expect(ref.initExit).toBe(0);
    const res = /\nvk res (.*)\n/.exec(ref.console)![1]!.split(' ');
    // The read through window page 1 (frame 5, word 2); read-pte: frame index 5 + 1, P|W|A (the read set A).
    expect(res[0]).toBe(hex8(pattern(5, 2)));
    expect(res[1]).toBe(hex8((6 << 12) | 0x23));
    // Directory B maps window page 0 to frame 3 (page j → frame j + 3): word 1.
    expect(res[2]).toBe(hex8(pattern(3, 1)));
    // save-flags: IF only, clear in the kernel, set after irq-enable; the 8259A mask the kernel programmed.
    expect(res.slice(3, 6)).toEqual([hex8(0), hex8(0x200), hex8(0xfa)]);
    for (const c of KERNEL_EQ_CONFIGS) expect(kernelDifference(ref, runKernelGuest(image, c)), c).toBeNull();
  });

  it('the comparison sees a difference: trap shows the real IF to a kernel-mode PUSHF', { timeout: 20_000 }, () => {
    const d = kernelEquivalenceCheck({ regs: [0, 0, 0, 0, 0, 0, 0], hostile: false, items: [{ op: 'kpushf', d: 'edx' }] }, ['trap']);
    expect(d).toMatch(/^native vs trap: console line \d+: .*0x00000000 vs 0x00000200/);
  });

  it('raw kernel-mode sensitive instructions: pv and trap show ring 1 and the monitor\'s tables, full and hw none', { timeout: 20_000 }, () => {
    const f = kernelSensitiveProbe(['full', 'hw-nested', 'pv', 'trap']);
    expect(f.filter((x) => /^(full|hw-nested):/.test(x))).toEqual([]);
    expect(f).toContain('pv: movsreg (raw) d=eax seg=cs: 0x00000008 natively, 0x00000009');
    expect(f).toContain('pv: sgdt (raw) off=0x0: 0xc010a000 natively, 0xffc00000');
    expect(f).toContain('trap: str (raw) d=eax: 0x00000028 natively, 0x00000000');
    expect(f.some((x) => x.startsWith('pv: str'))).toBe(false);
  });

  it('counterexamples print as the emitted pv-op sites, each under the action it stands for', () => {
    const l = kernelListing(wellFormed.items.slice(0, 4));
    expect(l[0]).toBe('; set-pte A[1] := pg#5 P|W; invlpg');
    expect(l).toContain('; eax := read-pte A[1]');
    expect(l.some((x) => /: mov \[edi\],eax$/.test(x))).toBe(true);
    expect(l.some((x) => /: invlpg \[eax\]$/.test(x))).toBe(true);
    expect(l.some((x) => /: call vk_norm$/.test(x))).toBe(true);
  });
});

describe('kernel-equivalence', () => {
  it('holds for generated well-formed programs natively and under full, hw-nested, hw-shadow and pv (seed 1)', { timeout: 60_000 }, () => {
    const r = runProperty('kernel-equivalence', { runs: 12, seed: 1 });
    expect(r.counterexample?.message ?? null).toBeNull();
    expect(r.ok).toBe(true);
    expect(r.runs).toBe(12);
  });
});

describe('pv-resource-control', () => {
  // A read-only mapping of a frame above guest RAM (the hypervisor's), named through the kernel's P2M copy.
  const foreign: KernelGuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], hostile: true, items: [{ op: 'kpte', t: 0, page: 0, frame: { k: 'mfn', n: 0x1003 }, flags: 1 }] };

  it('a refused mapping is a Xen errno counted as attack.*, and the kernel stops with a panic that says so', { timeout: 20_000 }, () => {
    const r = runKernelPv(foreign);
    expect(r.violation).toBeNull();
    expect(runKernelPv(foreign).log, 'deterministic').toEqual(r.log);
    expect(r.log[0]).toMatch(/^exit 511 \(kernel panic: pv: mmu_update failed\)/);
    expect(r.log[1]).toMatch(/^mmu_update refused: -1 \(.*attack\.foreign-frame 1/);
  });

  it('holds for generated hostile programs (seed 1)', { timeout: 60_000 }, () => {
    const r = runProperty('pv-resource-control', { runs: 15, seed: 1 });
    expect(r.counterexample?.message ?? null).toBeNull();
    expect(r.ok).toBe(true);
  });

  it('catches pv-foreign-frame and pv-writable-pagetable; the replayed case fails only with the mutant', { timeout: 60_000 }, () => {
    const v = withMutant('pv-foreign-frame', () => runKernelPv(foreign));
    expect(v.violation).toMatch(/^after the actions: L1 0x[0-9a-f]+\[0\] = 0x1003001: maps 0x1003, a frame the domain does not own$/);
    const r = runProperty('pv-resource-control', { runs: 20, seed: 1, mutant: 'pv-writable-pagetable' });
    expect(r.ok).toBe(false);
    const cx = r.counterexample!;
    expect(cx.message).toMatch(/writable/);
    const kernel = (cx.program as { kernel: KernelGuestProgram }).kernel;
    expect(kernel.items.length).toBe(1);
    expect(replayKernelCase({ kernel }).ok).toBe(true);
    const bad = withMutant('pv-writable-pagetable', () => replayKernelCase({ kernel }));
    expect(bad.ok).toBe(false);
    expect(bad.lines.at(-1)).toMatch(/^pv: violation: /);
  });
});

describe('kernel-resource-control', () => {
  it('holds for generated hostile programs under trap, full, hw-shadow and hw-nested (seed 1)', { timeout: 60_000 }, () => {
    const r = runProperty('kernel-resource-control', { runs: 6, seed: 1 });
    expect(r.counterexample?.message ?? null).toBeNull();
    expect(r.ok).toBe(true);
  });

  it('catches shadow-no-frame-check: a store through the kernel\'s direct map beyond its 16 MiB of RAM (it maps 32 MiB)', { timeout: 30_000 }, () => {
    const p: KernelGuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], hostile: true, items: [{ op: 'kwpte', table: { k: 'pfn', n: 0x1800 }, index: 0, frame: { k: 'pg', i: 0 }, flags: 1 }] };
    expect(runKernelMapped(p, 'trap').violation).toBeNull();
    const v = withMutant('shadow-no-frame-check', () => runKernelMapped(p, 'trap')).violation;
    expect(v).toMatch(/shadow maps 0x[0-9a-f]+ to 0x[0-9a-f]+, outside guest RAM$/);
    expect(replayKernelCase({ kernel: p }, ['trap', 'hw-nested']).ok).toBe(true);
  });
});
