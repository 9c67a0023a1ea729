/**
 * Option parsing shared by the commands that run a guest (`exec`, `record`, `replay`): numbers,
 * the image and its start, the mode and its options. One place, so that every command
 * gives the same one-line error for the same mistake.
 */
import { readFileSync } from 'node:fs';
import { ImageError } from '../guest/elf.js';
import { DEFAULT_PROFILE, DEFAULT_VMM_PROFILE, loadProfile, type LoadedProfile } from '../profiles/index.js';
import { createMonitor, HW_DEFAULTS, MONITOR_MODES, type MonitorMode } from '../vmm/index.js';
import { UsageError } from './errors.js';
import { WORKLOAD_PREFIX, workloadForExec, type ExecWorkload } from './workloads.js';

/** An integer option: decimal, 0x hex, `_` separators, or 1e9 forms; UsageError outside min..max. */
export function parseNumber(flag: string, text: string, min: number, max: number): number {
  const t = text.replace(/_/g, '');
  const v = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^[0-9]+$/.test(t) ? Number(t) : /^[0-9.]+e[0-9]+$/i.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new UsageError(`${flag}: expected an integer in ${min}..${max}, got "${text}"`);
  return v;
}

/** An image file's bytes (ImageError naming the file and why it cannot be read). */
export function readImage(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : `cannot read (${code ?? String(e)})`;
    throw new ImageError(path, why);
  }
}

/** The image options as parseArgs gives them. */
export interface ImageArgValues {
  readonly memory?: string;
  readonly flat?: string;
  readonly entry?: string;
  readonly 'real-mode'?: boolean;
  readonly cmdline?: string;
  readonly param?: string[];
}

/** What the image options say: the image (a file or workload:NAME), its start, the RAM size. */
export interface ImageArgs {
  readonly imagePath: string;
  readonly memoryMiB: number;
  readonly flat?: { readonly loadAddress: number; readonly entry?: number; readonly mode: 'real' | 'protected32' };
  readonly cmdline: string;
  /** The built workload for workload:NAME, else null. */
  readonly workload: ExecWorkload | null;
}

/** Checks the image options together (e.g. --entry needs --flat, --param needs workload:NAME). */
export function parseImageArgs(imagePath: string, values: ImageArgValues): ImageArgs {
  const memoryMiB = values.memory !== undefined ? parseNumber('--memory', values.memory, 1, 2048) : 64;
  const flat = values.flat !== undefined ? parseNumber('--flat', values.flat, 0, 0xffffffff) : undefined;
  if (flat === undefined && (values.entry !== undefined || values['real-mode'])) throw new UsageError('--entry and --real-mode need --flat ADDR');
  if (flat !== undefined && values.cmdline !== undefined) throw new UsageError('--cmdline is for Multiboot images, not with --flat');
  const entry = values.entry !== undefined ? parseNumber('--entry', values.entry, 0, 0xffffffff) : undefined;
  let workload: ExecWorkload | null = null;
  if (imagePath.startsWith(WORKLOAD_PREFIX)) {
    if (flat !== undefined) throw new UsageError('--flat is for raw binaries, not workload:NAME');
    workload = workloadForExec(imagePath, values.param ?? []);
  } else if (values.param !== undefined) {
    throw new UsageError('--param is for workload:NAME images');
  }
  return {
    imagePath, memoryMiB, cmdline: values.cmdline ?? '', workload,
    flat: flat !== undefined ? { loadAddress: flat, entry, mode: values['real-mode'] ? 'real' : 'protected32' } : undefined,
  };
}

/** The mode options as parseArgs gives them. */
export interface ModeArgValues {
  readonly mode?: string;
  readonly paging?: string;
  readonly vpid?: string;
  readonly profile?: string;
}

/** What the mode options say, checked against each other and against the profile. */
export interface ModeArgs {
  readonly mode: MonitorMode;
  readonly paging: 'nested' | 'shadow';
  readonly vpid: boolean;
  readonly profile: LoadedProfile;
}

/**
 * Checks --mode, --paging, --vpid and --profile (default: the machine's profile natively,
 * the virtualization profile under any monitor), and builds the monitor once so that a
 * profile without the figures or features the mode needs fails before anything runs.
 */
export function parseModeArgs(values: ModeArgValues, defaultMode: MonitorMode | null): ModeArgs {
  const modeName = values.mode ?? defaultMode;
  if (modeName === null) throw new UsageError(`--mode is required (${MONITOR_MODES.join(', ')})`);
  if (!(MONITOR_MODES as readonly string[]).includes(modeName)) throw new UsageError(`--mode: unknown mode "${modeName}" (known: ${MONITOR_MODES.join(', ')})`);
  const mode = modeName as MonitorMode;
  if (mode !== 'hw' && (values.paging !== undefined || values.vpid !== undefined)) {
    throw new UsageError(`${values.paging !== undefined ? '--paging' : '--vpid'} is only valid with --mode hw`);
  }
  const paging = values.paging ?? HW_DEFAULTS.paging;
  if (paging !== 'nested' && paging !== 'shadow') throw new UsageError(`--paging: expected nested or shadow, got "${paging}"`);
  const vpidText = values.vpid ?? (HW_DEFAULTS.vpid ? 'on' : 'off');
  if (vpidText !== 'on' && vpidText !== 'off') throw new UsageError(`--vpid: expected on or off, got "${vpidText}"`);
  const vpid = vpidText === 'on';
  const profile = loadProfile(values.profile ?? (mode === 'native' ? DEFAULT_PROFILE : DEFAULT_VMM_PROFILE));
  try {
    createMonitor(mode, { profile: profile.profile, paging, vpid });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  return { mode, paging, vpid, profile };
}
