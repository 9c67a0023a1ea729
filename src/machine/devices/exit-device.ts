import type { Cpu, StopReason } from '../cpu/cpu.js';
import type { PortBus } from '../port-bus.js';

/** The I/O base QEMU's tests conventionally give isa-debug-exit (`iobase=0xf4`). */
export const EXIT_PORT = 0xf4;

/**
 * Stops the machine: records why and makes the CPU leave its block loop after the current
 * instruction (the loop only looks at `stopReason` when `attention` is set).
 */
export function stopMachine(cpu: Cpu, reason: StopReason): void {
  cpu.stop(reason);
}

/**
 * QEMU's isa-debug-exit with `iosize=4`: a write of value v, of any width, anywhere in the
 * four ports stops the machine with exit status (v << 1) | 1 (so a guest can never make
 * the emulator report plain success, 0). The code is kept unreduced (v is up to 32 bits,
 * so the code up to 33 bits); a process exit status is `code & 0xff`, as QEMU's `exit()`.
 */
export class ExitDevice {
  constructor(cpu: Cpu, io: PortBus, base = EXIT_PORT) {
    const exit = (_p: number, v: number): void => {
      stopMachine(cpu, { kind: 'exit-device', code: (v >>> 0) * 2 + 1 });
    };
    for (let i = 0; i < 4; i++) io.registerWrite8(base + i, exit);
    for (let i = 0; i < 3; i++) io.registerWrite16(base + i, exit);
    io.registerWrite32(base, exit);
  }
}
