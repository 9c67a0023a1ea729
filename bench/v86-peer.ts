/**
 * Runs a multiboot guest on v86 (npm `v86`, a JavaScript/WebAssembly x86 emulator with a
 * JIT) as a speed reference for the benchmark. v86 boots through a BIOS (Debian's
 * `seabios` package), then loads the kernel given in its `multiboot` option. Port 0xE9
 * output and the 0xF4 exit are caught with handlers on v86's port bus.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Where the BIOS image is looked for. */
export const BIOS_PATHS = ['/usr/share/seabios/bios.bin', '/usr/share/seabios/bios-256k.bin'];

export interface V86Result {
  /** Bytes written to port 0xE9, latin-1. */
  readonly debugcon: string;
  /** The value the guest wrote to port 0xF4. */
  readonly exitValue: number;
  /** Wall-clock seconds from the emulator's start to the exit write (BIOS boot included). */
  readonly secondsBootToExit: number;
  /** Wall-clock seconds from the guest's first 0xE9 byte to the exit write: the guest's own work. */
  readonly secondsGuest: number;
  /** v86's instruction counter over the same span as `secondsGuest`. */
  readonly instructionsGuest: number;
}

/** Why v86 cannot be used here, or null when it can. */
export function v86Unavailable(): string | null {
  if (!BIOS_PATHS.some((p) => existsSync(p))) return `no BIOS image (looked for ${BIOS_PATHS.join(', ')}; apt-get install seabios)`;
  try {
    createRequire(import.meta.url).resolve('v86');
  } catch {
    return 'the npm package v86 is not installed (it is a devDependency)';
  }
  return null;
}

interface V86Io {
  register_write(port: number, device: object, w8?: (v: number) => void, w16?: (v: number) => void, w32?: (v: number) => void): void;
}
interface V86Emulator {
  v86: { cpu: { io: V86Io } };
  add_listener(event: string, fn: () => void): void;
  run(): Promise<void> | void;
  stop(): Promise<void> | void;
  destroy(): Promise<void> | void;
  get_instruction_counter(): number;
}

/** Runs `elf` on v86 until it writes port 0xF4, or rejects after `timeoutSeconds`. */
export async function runOnV86(elf: Uint8Array, memoryBytes: number, timeoutSeconds = 120): Promise<V86Result> {
  const req = createRequire(import.meta.url);
  const pkgDir = dirname(req.resolve('v86/package.json'));
  const { V86 } = (await import('v86')) as unknown as { V86: new (o: object) => V86Emulator };
  const bios = BIOS_PATHS.find((p) => existsSync(p))!;
  const toAb = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  const emulator = new V86({
    wasm_path: join(pkgDir, 'build', 'v86.wasm'),
    bios: { buffer: toAb(new Uint8Array(readFileSync(bios))) },
    multiboot: { buffer: toAb(elf) },
    memory_size: memoryBytes,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    log_level: 0,
  });
  return await new Promise<V86Result>((resolve, reject) => {
    const out: number[] = [];
    let tStart = 0, tFirst = 0, iFirst = 0;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      void Promise.resolve(emulator.destroy()).catch(() => undefined);
      reject(new Error(`v86 did not exit within ${timeoutSeconds} s (printed ${JSON.stringify(Buffer.from(out).toString('latin1').slice(0, 200))})`));
    }, timeoutSeconds * 1000);
    emulator.add_listener('emulator-ready', () => {
      const io = emulator.v86.cpu.io;
      const e9 = (v: number): void => {
        if (out.length === 0) { tFirst = performance.now(); iFirst = emulator.get_instruction_counter(); }
        out.push(v & 0xff);
      };
      const exit = (v: number): void => {
        if (done) return;
        const t = performance.now();
        const instr = emulator.get_instruction_counter();
        done = true;
        clearTimeout(timer);
        void Promise.resolve(emulator.stop())
          .then(() => emulator.destroy())
          .catch(() => undefined)
          .then(() => resolve({
            debugcon: Buffer.from(out).toString('latin1'),
            exitValue: v >>> 0,
            secondsBootToExit: (t - tStart) / 1000,
            secondsGuest: (t - tFirst) / 1000,
            instructionsGuest: instr - iFirst,
          }));
      };
      const dev = {};
      io.register_write(0xe9, dev, e9, (v) => { e9(v); e9(v >> 8); }, (v) => { e9(v); e9(v >> 8); e9(v >> 16); e9(v >> 24); });
      io.register_write(0xf4, dev, exit, exit, exit);
      tStart = performance.now();
      void emulator.run();
    });
  });
}
