/**
 * Guests that `virtlab build-guest NAME` can build without a module. Each is a builder
 * with described string parameters; later issues add the kernel and the workloads here.
 */
import { Assembler } from '../x86/assembler.js';
import { al, esi } from '../x86/operands.js';
import { imageFromAssembly, type GuestImage } from './image.js';
import { WORKLOAD_GUESTS } from './workloads/guests.js';

/** One parameter of a built-in guest. */
export interface GuestParam {
  readonly description: string;
  readonly default: string;
}

/** A guest that can be built by name. */
export interface GuestBuilder {
  /** One line. */
  readonly description: string;
  readonly params: Readonly<Record<string, GuestParam>>;
  /** Builds the image; `params` holds every parameter (defaults filled in). */
  build(params: Readonly<Record<string, string>>): GuestImage;
}

/**
 * `hello`: prints a message on the debug console (port 0xE9) through a port-out pv-op site,
 * then writes the exit code to port 0xF4 (QEMU's isa-debug-exit: status (code << 1) | 1).
 */
function buildHello(params: Readonly<Record<string, string>>): GuestImage {
  const message = params.message ?? 'hello from virtlab\n';
  const code = Number(params.exit ?? '0');
  if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`exit: expected an integer in 0..255, got "${params.exit}"`);
  const a = new Assembler({ bits: 32, origin: 0x100000 });
  const msg = a.label('message');
  const start = a.func('_start', () => {
    const loop = a.label();
    const done = a.label();
    a.mov(esi, msg);
    a.bind(loop);
    a.lodsb(); // al = next byte
    a.test(al, al);
    a.jz(done);
    a.pvop('port-out', () => a.out(0xe9, al));
    a.jmp(loop);
    a.bind(done);
    a.mov(al, code);
    a.pvop('port-out', () => a.out(0xf4, al));
    const stop = a.here(); // not reached on QEMU or virtlab: the exit port stops the machine
    a.cli();
    a.hlt();
    a.jmp(stop);
  });
  a.section('rodata');
  a.bind(msg);
  a.asciz(message);
  return imageFromAssembly(a.build(), { name: 'hello', entry: start, metadata: { builder: 'hello', message, exit: code } });
}

export const BUILTIN_GUESTS: Readonly<Record<string, GuestBuilder>> = {
  hello: {
    description: 'prints a message on port 0xE9 and exits through port 0xF4',
    params: {
      message: { description: 'the text to print (latin-1)', default: 'hello from virtlab\n' },
      exit: { description: 'exit code written to port 0xF4 (0..255)', default: '0' },
    },
    build: buildHello,
  },
  ...WORKLOAD_GUESTS,
};
