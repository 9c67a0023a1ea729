import type { PortBus } from '../port-bus.js';
import type { ConsoleSink } from './console.js';

/** The debug console port (QEMU's `-debugcon`, Bochs' port E9 hack). */
export const DEBUGCON_PORT = 0xe9;

/**
 * Port 0xE9 debug console: a byte written goes to the console; a read returns 0xE9, which
 * is how guests detect the port (as QEMU's isa-debugcon with its default readback value).
 */
export class DebugCon {
  constructor(io: PortBus, sink: ConsoleSink, port = DEBUGCON_PORT) {
    io.registerWrite8(port, (_p, v) => sink.write(v & 0xff));
    io.registerRead8(port, () => 0xe9);
  }
}
