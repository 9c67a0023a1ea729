/**
 * The exit status of a run (what `virtlab exec` and `replay` return as their process status)
 * and the one-line message that explains a run that did not end at the exit device.
 */
import type { RunOutcome } from '../machine/machine.js';

/** Bad input, an unsupported instruction or a triple fault. */
export const STATUS_ERROR = 2;
/** The instruction limit was reached: even (the exit device only gives odd statuses), as timeout(1) uses. */
export const STATUS_LIMIT = 124;
/** The guest halted with interrupts disabled or asked for a reset. */
export const STATUS_STOPPED = 4;

const hex = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');

/** The process exit status for an outcome, and the one-line message for stderr (or null). */
export function statusFor(o: RunOutcome): { status: number; message: string | null } {
  const e = o.exit;
  switch (e.reason) {
    case 'exit-device': return { status: e.code & 0xff, message: null };
    case 'triple-fault': return { status: STATUS_ERROR, message: `triple fault (the guest's outcome): ${e.detail}` };
    case 'unsupported':
      return { status: STATUS_ERROR, message: `unsupported instruction at ${hex(e.address)}: ${e.disassembly} (bytes ${e.bytes}): ${e.detail}` };
    case 'instruction-limit': return { status: STATUS_LIMIT, message: e.detail };
    case 'halt': return { status: STATUS_STOPPED, message: `guest halted: ${e.detail}` };
    case 'shutdown': return { status: STATUS_STOPPED, message: `guest shut down: ${e.detail}` };
  }
}
