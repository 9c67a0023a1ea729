import { describe, expect, it } from 'vitest';
import { attachBlockDevice } from '../../src/machine/devices/block-device.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';

const profile = loadProfile('p6-provisional').profile;

/**
 * A 32-bit flat guest: builds a one-entry PRD table, issues READ DMA of LBA 5 through the
 * registers, starts the bus master, polls BMISTA.INTERRUPT, then exits with byte 7 of the
 * buffer (the exit device reports (v << 1) | 1).
 */
const GUEST = [
  0xc7, 0x05, 0x00, 0x80, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, // mov dword [0x8000], 0x9000
  0xc7, 0x05, 0x04, 0x80, 0x00, 0x00, 0x00, 0x02, 0x00, 0x80, // mov dword [0x8004], 0x80000200 (512 bytes, EOT)
  0x66, 0xba, 0x44, 0xc0, 0xb8, 0x00, 0x80, 0x00, 0x00, 0xef, // mov dx, 0xC044; mov eax, 0x8000; out dx, eax
  0x66, 0xba, 0xf6, 0x01, 0xb0, 0xe0, 0xee, // device: LBA, master
  0x66, 0xba, 0xf2, 0x01, 0xb0, 0x01, 0xee, // count 1
  0x66, 0xba, 0xf3, 0x01, 0xb0, 0x05, 0xee, // LBA 5
  0x66, 0xba, 0xf4, 0x01, 0xb0, 0x00, 0xee,
  0x66, 0xba, 0xf5, 0x01, 0xee,
  0x66, 0xba, 0xf7, 0x01, 0xb0, 0xc8, 0xee, // READ DMA
  0x66, 0xba, 0x40, 0xc0, 0xb0, 0x09, 0xee, // BMICOM: start, write to memory
  0x66, 0xba, 0x42, 0xc0, 0xec, 0xa8, 0x04, 0x74, 0xf7, // poll: in al, BMISTA; test al, 4; jz poll
  0xa0, 0x07, 0x90, 0x00, 0x00, // mov al, [0x9007]
  0xe6, 0xf4, // out 0xf4, al
];

describe('ATA disk in a machine', () => {
  it('a guest reads a sector by DMA through the real port bus, timed by the machine clock', () => {
    const m = new Machine({ profile, memoryMiB: 4 });
    const image = new Uint8Array(64 * 512);
    image[5 * 512 + 7] = 0x42;
    const ata = attachBlockDevice(m, { image, seed: 1, latency: { baseCycles: 30_000, perSectorCycles: 0, jitterCycles: 0 } });
    m.loadFlat(Uint8Array.from(GUEST), 'dma.bin', { loadAddress: 0x100000 });
    const o = m.run({ maxInstructions: 1_000_000 });
    expect(o.exit).toEqual({ reason: 'exit-device', code: 0x42 * 2 + 1 });
    expect(ata.counters.dmaBytes).toBe(512);
    expect(o.cycles).toBeGreaterThanOrEqual(30_000); // the guest waited for the modelled latency
    expect(ata.counters.interrupts).toBe(1);
  });
});
