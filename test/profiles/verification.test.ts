import { describe, expect, it } from 'vitest';
import { hasVmmFigures, loadProfile, type ProfileV2 } from '../../src/profiles/index.js';

/**
 * Checks tied to the verification pass of 2026-11-25 (src/profiles/README.md, "Where the
 * figures come from: verification status"): derived figures must equal their stated
 * derivation, and figures confirmed against a published source must keep that source's
 * numbers. The expected numbers here come from the sources, not from the profiles.
 */

const GENERATIONS = ['p4-2005', 'core2-2008', 'nehalem-2009', 'skylake-2015', 'zen3-2020'] as const;

/** The per-clock factor for VMM/Xen software that each profile's own sources state. */
const SOFTWARE_FACTOR: Record<(typeof GENERATIONS)[number], number> = {
  'p4-2005': 1.5, 'core2-2008': 1, 'nehalem-2009': 0.9, 'skylake-2015': 0.7, 'zen3-2020': 0.7,
};

function v2(id: string): ProfileV2 {
  const p = loadProfile(id).profile;
  if (!hasVmmFigures(p)) throw new Error(`${id} is not a v2 profile`);
  return p;
}

describe('hypercall: derived from Xen 3.0 entry.S and the profile\'s own figures', () => {
  it.each(GENERATIONS)('%s: INT 0x82 + delivery + 2 ring changes + IRET + 60 instructions + 6 segment loads', (id) => {
    const p = v2(id);
    const k = SOFTWARE_FACTOR[id];
    const hardware = p.classes.softwareInterrupt.value + p.events.interrupt.value
      + 2 * p.events.privilegeChange.value + p.classes.iret.value;
    const segmentLoad = p.classes.segmentLoad.value + p.events.segmentLoadProtected.value;
    expect(p.paravirtualization.hypercall.value).toBe(hardware + Math.round(60 * k) + 6 * segmentLoad);
    // The source states the derivation and where the instruction count comes from.
    expect(p.paravirtualization.hypercall.source).toContain('xen/arch/x86/x86_32/entry.S');
    expect(p.paravirtualization.hypercall.source).toContain(`60 × ${k}`);
  });
});

describe('device model per port access: bounded by Sugerman et al. (USENIX ATC 2001)', () => {
  it('the Core 2 class figure is below the whole measured in-VMM handling of a PIC IN/OUT (0.78 µs at 733 MHz)', () => {
    const wholeHandling = Math.round(0.78e-6 * 733e6); // ≈ 572 cycles on the paper's Pentium III
    expect(v2('core2-2008').devices.portIoEmulation.value).toBeLessThan(wholeHandling);
  });

  it.each(GENERATIONS)('%s: scaled from the Core 2 class figure by the profile\'s factor, source cited', (id) => {
    const p = v2(id);
    expect(p.devices.portIoEmulation.value).toBe(Math.round(v2('core2-2008').devices.portIoEmulation.value * SOFTWARE_FACTOR[id]));
    expect(p.devices.portIoEmulation.source).toMatch(/Sugerman, Venkitachalam & Lim/);
  });
});

describe('TLB geometry keeps the entry counts of the sources it was checked against', () => {
  // entries = sets × ways, from CPUID leaf 2 descriptors (decoded by Linux's intel_tlb_table),
  // Intel's optimization manual as quoted on Intel's forum, Wikipedia/RWT (Nehalem) and
  // WikiChip/7-cpu (Zen 2).
  const EXPECTED: Record<string, { itlb: number; dtlb: number; largePageDtlb?: number; stlb?: number }> = {
    'p6-provisional': { itlb: 32, dtlb: 64 },            // descriptors 01h, 03h
    'p4-2005': { itlb: 128, dtlb: 64, stlb: 0 },          // descriptors 51h, 5Bh; no second level
    'core2-2008': { itlb: 128, dtlb: 16, largePageDtlb: 16, stlb: 256 }, // B0h, 57h, 56h, B4h
    'nehalem-2009': { itlb: 128, dtlb: 64, largePageDtlb: 32, stlb: 512 },
    'skylake-2015': { itlb: 128, dtlb: 64, stlb: 1536 },  // Table 2-15; descriptors 03h, C3h
    'zen3-2020': { itlb: 64, dtlb: 64, stlb: 2048 },      // as Zen 2 (assumption noted)
  };
  it.each(Object.keys(EXPECTED))('%s', (id) => {
    const tlb = loadProfile(id).profile.tlb as Record<string, { sets: { value: number }; ways: { value: number } }>;
    const entries = (k: string) => tlb[k]!.sets.value * tlb[k]!.ways.value;
    for (const [k, n] of Object.entries(EXPECTED[id]!)) expect(entries(k), `${id} ${k}`).toBe(n);
  });
});

describe('VT-x round trips: measured bare-hardware figures where a measurement was found', () => {
  // yulyugin/vmlatency results (VMRESUME -> guest CPUID -> VM exit, no handler software):
  // E8500 (Wolfdale, as the E8400) 1118, i5 760 (Nehalem core, as the X5570) 950, i7-6700K 632.
  const MEASURED: Record<string, number> = { 'core2-2008': 1118, 'nehalem-2009': 950, 'skylake-2015': 632 };
  it.each(Object.keys(MEASURED))('%s: exit + entry equals the measured round trip, and the source names it', (id) => {
    const p = v2(id);
    expect(p.virtualization.vmExit.value + p.virtualization.vmEntry.value).toBe(MEASURED[id]);
    expect(p.virtualization.vmExit.source).toContain('yulyugin/vmlatency');
    expect(p.virtualization.vmEntry.source).toContain('yulyugin/vmlatency');
  });

  it('the Pentium 4 figure, for which no measurement was found, is marked UNVERIFIED', () => {
    const p = v2('p4-2005');
    expect(p.virtualization.vmExit.source).toMatch(/UNVERIFIED/);
    expect(p.virtualization.vmEntry.source).toMatch(/UNVERIFIED/);
  });
});
