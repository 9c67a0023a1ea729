// DMA under resource control (issue 8): every bus-master access of the verifier's disk is
// watched under every monitor configuration (invariants.ts DmaWatch around the device's
// guestRamDma), and the dma-no-bound mutant (no IOMMU-style bound) is caught by it.
import { describe, expect, it } from 'vitest';
import { runProperty, resourceCheckOne } from '../../src/verify/properties.js';
import { runProgram } from '../../src/verify/run.js';
import { buildGuest, LAYOUT, type GuestProgram } from '../../src/verify/guest-program.js';
import { DmaWatch } from '../../src/verify/invariants.js';
import { guestRamDma } from '../../src/machine/devices/block-device.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { checkMutant, withMutant } from '../../src/vmm/mutants.js';
import { planFor } from '../../src/verify/mutation.js';

const GUEST = LAYOUT.guestMiB << 20;
/** The disk's byte at offset i (run.ts fills it so: 0xA5 xor the offset's low byte, never 0). */
const diskByte = (i: number): number => (0xa5 ^ (i & 0xff)) || 0x5a;

/** A paging guest with one DMA descriptor: PRD at `prd`, buffer at `buf` (one sector is read). */
const dmaProgram = (prd: number, buf: number): GuestProgram =>
  ({ regs: [0, 0, 0, 0, 0, 0, 0], paging: true, items: [{ op: 'dma', prd, buf, bytes: 0x1000 }] });

describe('DMA under the monitors', () => {
  for (const config of ['hw-nested', 'full', 'trap', 'hw-shadow']) {
    it(`${config}: a descriptor straddling the end of guest RAM fills RAM, writes nothing beyond it, counts dmaOutsideRam`, () => {
      // The sector's first 256 bytes land in the guest's last 256 bytes; the rest is beyond.
      const r = runProgram(dmaProgram(0x1ff000, GUEST - 0x100), config, { disk: true, dmaWatch: true, check: () => null, checkEvery: 300 });
      expect(r.exit).toBe('exit 1');
      const u8 = r.machine.mem.u8;
      for (let i = 0; i < 0x100; i++) expect(u8[GUEST - 0x100 + i], `RAM byte ${i}`).toBe(diskByte(i));
      // Beyond RAM (monitor memory): not the sector's second half.
      let same = 0;
      for (let i = 0; i < 0x100; i++) if (u8[GUEST + i] === diskByte(0x100 + i)) same++;
      expect(same).toBeLessThan(0x100);
      expect(r.machine.disk!.counters.dmaOutsideRam).toBe(1);
      expect(r.machine.disk!.counters.dmaErrors).toBe(1);
      expect(r.dma!.outside).toBe(1);
      expect(r.dma!.violation).toBeNull();
    });
  }

  it('hw-nested and full: a PRD table beyond guest RAM is refused and counted; resourceCheckOne passes', () => {
    for (const config of ['hw-nested', 'full']) {
      const p = dmaProgram(GUEST + 0x200, 0x1000);
      const r = runProgram(p, config, { disk: true, dmaWatch: true, check: () => null });
      expect(r.exit, config).toBe('exit 1');
      expect(r.machine.disk!.counters.dmaOutsideRam, config).toBe(1);
      expect(resourceCheckOne(p, config, buildGuest(p)), config).toBeNull();
    }
  });

  it('dma-no-bound: the straddling descriptor writes monitor memory, reported with its address', () => {
    for (const config of ['hw-nested', 'full']) {
      const p = dmaProgram(0x1ff000, GUEST - 0x100);
      const m = withMutant('dma-no-bound', () => resourceCheckOne(p, config, buildGuest(p)));
      expect(m, config).toMatch(/^violation: DMA write of 512 bytes at 0x7fff00 changed 0x8000[0-9a-f]{2}, beyond guest RAM \(0x[0-9a-f]+ -> 0x[0-9a-f]+\)$/);
      // A PRD table beyond RAM is read from monitor memory: the read is not refused.
      const q = dmaProgram(GUEST, 0x1000);
      expect(withMutant('dma-no-bound', () => resourceCheckOne(q, config, buildGuest(q))), config)
        .toBe('violation: DMA read of 8 bytes at 0x800000 reaches beyond guest RAM (0x800000) and was not refused');
    }
  });

  it('DmaWatch: flags a bound that lets a write through, or refuses without counting', () => {
    const mem = new PhysicalMemory(1 << 20, 1 << 20);
    const watch = new DmaWatch();
    // An unbounded path (what the mutant does): writes beyond RAM land.
    watch.bind(mem, { read: () => true, write: (a, s) => { mem.u8.set(s, a); return true; } }, () => 0);
    expect(watch.write(mem.guestSize - 2, Uint8Array.of(1, 2, 3, 4))).toBe(true);
    expect(watch.violation).toBe('DMA write of 4 bytes at 0xffffe changed 0x100000, beyond guest RAM (0x0 -> 0x3)');
    // The device's bound with a counter that is not incremented.
    const w2 = new DmaWatch();
    w2.bind(mem, guestRamDma(mem, () => {}), () => 0);
    expect(w2.read(mem.guestSize, new Uint8Array(8))).toBe(false);
    expect(w2.violation).toBe('DMA read of 8 bytes at 0x100000 beyond guest RAM was refused but not counted (dmaOutsideRam)');
    // The device's bound, counted: no violation, RAM below written, nothing above.
    let refused = 0;
    const w3 = new DmaWatch();
    mem.u8.fill(0);
    w3.bind(mem, guestRamDma(mem, () => { refused++; }), () => refused);
    expect(w3.write(mem.guestSize - 2, Uint8Array.of(1, 2, 3, 4))).toBe(false);
    expect(w3.violation).toBeNull();
    expect([...mem.u8.subarray(mem.guestSize - 2, mem.guestSize + 2)]).toEqual([1, 2, 0, 0]);
    expect(refused).toBe(1);
  });
});

describe('resource-control and the dma-no-bound mutant', () => {
  it('planFor runs resource-control under monitor configurations only', () => {
    const plan = planFor(checkMutant('dma-no-bound'));
    expect(plan).toEqual([{ property: 'resource-control', configs: ['hw-nested', 'full'] }]);
  });

  it('holds without the mutant and catches it (fixed seed, bounded runs)', { timeout: 30_000 }, () => {
    const ok = runProperty('resource-control', { runs: 10, seed: 2, configs: ['hw-nested', 'full'] });
    expect(ok.ok, ok.counterexample?.message).toBe(true);
    const bad = runProperty('resource-control', { runs: 40, seed: 2, configs: ['hw-nested', 'full'], mutant: 'dma-no-bound', shrink: false });
    expect(bad.firstFailure).not.toBeNull();
    // Found under a monitor (not only by the native check that follows them).
    expect(bad.counterexample!.message).toMatch(/^(hw-nested|full): violation: DMA (read|write) of \d+ bytes at 0x[0-9a-f]+ /);
  });
});
