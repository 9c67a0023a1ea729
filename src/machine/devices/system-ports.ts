import type { Cpu } from '../cpu/cpu.js';
import type { PortBus } from '../port-bus.js';
import { stopMachine } from './exit-device.js';

/**
 * The small fixed ports of a PC chipset that guests touch in passing:
 *  - 0x80, the POST-code port, used as an I/O delay: writes ignored, reads 0xFF (as QEMU);
 *  - 0x92, System Control Port A: bit 1 is the A20 gate (stored; virtlab never masks A20),
 *    and writing bit 0 as 1 is a fast reset, which stops the machine (`shutdown`) as QEMU
 *    does under `-no-reboot`.
 * Port 0x61 (speaker / PIT channel 2 gate) belongs to the PIT model (pit.ts).
 */
export class SystemPorts {
  private port92 = 0x02;

  constructor(cpu: Cpu, io: PortBus) {
    io.registerWrite8(0x80, () => {});
    io.registerRead8(0x80, () => 0xff);
    io.registerRead8(0x92, () => this.port92);
    io.registerWrite8(0x92, (_p, v) => {
      this.port92 = v & 0x02;
      if ((v & 1) !== 0) stopMachine(cpu, { kind: 'shutdown', detail: 'reset requested through port 0x92 (fast reset)' });
    });
  }
}
