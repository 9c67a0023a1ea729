import { describe, expect, it } from 'vitest';
import { runGuest } from '../e2e/guest-harness.js';

describe('cycle accounting', () => {
  it('splits a paging, interrupt-driven guest into categories that sum to the total', () => {
    const { outcome } = runGuest('sys');
    const a = outcome.accounting;
    const cats = Object.values(a.categories);
    expect(a.total).toBe(outcome.cycles);
    expect(cats.reduce((s, c) => s + c.cycles, 0)).toBe(a.total);
    for (const c of cats) {
      expect(c.cycles).toBeGreaterThanOrEqual(0);
      expect(Number.isInteger(c.cycles)).toBe(true);
    }
    // sys.elf turns paging on and waits for timer ticks: both overheads are really there.
    expect(a.categories['page-walk']!.count).toBe(outcome.tlb.walkReferences);
    expect(a.categories['page-walk']!.cycles).toBeGreaterThan(0);
    expect(a.categories.idle!.cycles).toBe(outcome.idleCycles);
    expect(a.categories.guest!.count).toBe(outcome.instructions);
  });

  it('charges no page walks to a guest that never enables paging', () => {
    const { outcome } = runGuest('compute');
    expect(outcome.accounting.categories['page-walk']!.cycles).toBe(0);
    expect(outcome.accounting.categories.guest!.cycles).toBe(outcome.cycles - outcome.idleCycles);
  });
});
