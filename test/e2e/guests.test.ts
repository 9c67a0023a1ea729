/**
 * End-to-end: real guest kernels (gcc -m32, multiboot; sources in test/guests/src) run on
 * virtlab must print exactly what they printed under QEMU (recorded in
 * test/guests/expected) and exit the same way. QEMU is the oracle; its recordings were
 * checked against real hardware where that was possible (see test/guests/README.md).
 * `node --import ./scripts/ts-register.mjs test/e2e/guest-report.ts` explains a failure
 * in more detail (for `isa`: which instruction groups and inputs differ).
 */
import { describe, expect, it } from 'vitest';
import { describeExit, lineDiff, qemuStatusOf, readExpected, runGuest } from './guest-harness.js';

/** Guests that end through the exit port, with the console compared byte for byte. */
const EXITING = ['hello', 'isa', 'isa-verbose', 'sys', 'sys-heavy-small', 'compute', 'prot'];

function explain(name: string, expected: string, actual: string, exit: string): string {
  const diff = lineDiff(expected, actual, 12);
  return `${name} differs from QEMU (virtlab ended with ${exit}):\n  ${diff.join('\n  ')}`;
}

describe('guests against QEMU recordings', () => {
  for (const name of EXITING) {
    it(`${name}: same console output and exit status as QEMU`, () => {
      const q = readExpected(name);
      const r = runGuest(name, 60_000_000);
      const exit = describeExit(r.outcome);
      expect(r.debugcon, explain(name, q.debugcon, r.debugcon, exit)).toBe(q.debugcon);
      expect(r.serial, `${name}: COM1 output`).toBe(q.serial);
      expect(qemuStatusOf(r.outcome), `${name}: exit status (virtlab ended with ${exit})`).toBe(q.exitStatus);
      // Sanity of the recording itself: every one of these guests ends through the exit port.
      expect(q.exitStatus & 1).toBe(1);
    }, 120_000);
  }

  it('triple: an exception that cannot be delivered ends in a triple fault, as on QEMU', () => {
    const q = readExpected('triple');
    const r = runGuest('triple', 1_000_000);
    expect(q.exitStatus).toBe(0);
    expect(r.debugcon).toBe(q.debugcon);
    expect(r.outcome.exit.reason, describeExit(r.outcome)).toBe('triple-fault');
    // The first exception of the chain is the divide error.
    if (r.outcome.exit.reason === 'triple-fault') expect(r.outcome.exit.detail).toMatch(/#DE/);
  });

  it('sse: stops with a message naming the SSE instruction and its address', () => {
    const q = readExpected('sse');
    const r = runGuest('sse', 1_000_000);
    expect(r.debugcon).toBe(q.debugcon);
    // The guest printed where the MOVAPS is; QEMU (no handler) triple-faulted there.
    const m = /movaps at ([0-9a-f]{8})/.exec(q.debugcon);
    expect(m).not.toBeNull();
    const address = parseInt(m![1]!, 16);
    const e = r.outcome.exit;
    if (e.reason === 'unsupported') {
      expect(e.address >>> 0).toBe(address);
      expect(e.disassembly).toMatch(/movaps/i);
    } else {
      // A CPU without SSE may raise #UD instead; then the stop must still say what and where.
      expect(e.reason, describeExit(r.outcome)).toBe('triple-fault');
      const detail = 'detail' in e ? e.detail : '';
      expect(detail).toMatch(/#UD/);
      expect(detail.toLowerCase()).toContain(address.toString(16).padStart(8, '0'));
      expect(detail, 'the stop message should disassemble the faulting instruction').toMatch(/movaps/i);
    }
  });
});
