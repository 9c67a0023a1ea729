import { describe, expect, it } from 'vitest';
import { Tlb, TLB_GLOBAL } from '../../src/machine/tlb.js';

describe('Tlb', () => {
  it('hits after insert and misses before', () => {
    const t = new Tlb({ sets: 16, ways: 4 });
    expect(t.lookup(0x123)).toBe(-1);
    t.insert(0x123, 0x5000, 0);
    const i = t.lookup(0x123);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(t.frame[i]).toBe(0x5000);
    expect(t.counters).toMatchObject({ hits: 1, misses: 1 });
  });

  it('evicts the least recently used way of a full set', () => {
    const t = new Tlb({ sets: 1, ways: 2 });
    t.insert(1, 0x1000, 0);
    t.insert(2, 0x2000, 0);
    t.lookup(1); // 2 is now the LRU
    t.insert(3, 0x3000, 0);
    expect(t.probe(2)).toBe(-1);
    expect(t.probe(1)).toBeGreaterThanOrEqual(0);
    expect(t.counters.evictions).toBe(1);
  });

  it('keeps global entries across a non-global flush only', () => {
    const t = new Tlb({ sets: 4, ways: 2 });
    t.insert(1, 0x1000, TLB_GLOBAL);
    t.insert(2, 0x2000, 0);
    t.flush(true);
    expect(t.probe(1)).toBeGreaterThanOrEqual(0);
    expect(t.probe(2)).toBe(-1);
    t.flush(false);
    expect(t.probe(1)).toBe(-1);
  });

  it('rejects a geometry that is not a power of two', () => {
    expect(() => new Tlb({ sets: 3, ways: 1 })).toThrow(/power of two/);
  });
});
