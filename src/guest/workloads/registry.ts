/**
 * Workload definitions: what a workload is (name, group, one-line description, typed
 * parameters with ranges), how its parameters are checked, and what it builds (the kernel's
 * built-in programs, the init program, and the devices the machine needs). Workload
 * programs take their parameters as assembled-in constants: the kernel's execve has no
 * argument vector, and a constant keeps the program deterministic and self-describing.
 */
import type { BlockDeviceOptions } from '../../machine/devices/block-device.js';
import type { NicOptions } from '../../machine/devices/nic.js';
import type { UserProgram } from '../kernel/user.js';

/** An integer parameter. */
export interface IntParam {
  readonly kind: 'int';
  readonly description: string;
  readonly default: number;
  readonly min: number;
  readonly max: number;
}
/** A parameter taking one of a few words. */
export interface EnumParam {
  readonly kind: 'enum';
  readonly description: string;
  readonly default: string;
  readonly values: readonly string[];
}
export type ParamSpec = IntParam | EnumParam;

/** Checked parameter values: numbers for int parameters, strings for enum ones. */
export type ParamValues = Readonly<Record<string, number | string>>;

/** What a workload needs besides its programs. */
export interface WorkloadMachine {
  readonly disk?: BlockDeviceOptions;
  readonly nic?: NicOptions;
  /** RAM (default 64 MiB). */
  readonly memoryMiB?: number;
}

/** A built workload: the kernel's programs and the machine to run them on. */
export interface WorkloadBuild {
  readonly programs: readonly UserProgram[];
  readonly init: string;
  readonly machine: WorkloadMachine;
  /** Instruction budget that comfortably covers a run with these parameters (for runners and the CLI). */
  readonly maxInstructions: number;
}

/** A workload. */
export interface WorkloadDef {
  readonly name: string;
  readonly group: 'nano' | 'lmbench' | 'macro';
  /** One line. */
  readonly description: string;
  readonly params: Readonly<Record<string, ParamSpec>>;
  /** Checks that go across parameters; returns an error message or null. */
  readonly check?: (p: ParamValues) => string | null;
  readonly build: (p: ParamValues) => WorkloadBuild;
}

/** Bad workload input (unknown name or parameter, value out of range): one line. A RangeError, as builders' bad parameters are. */
export class WorkloadError extends RangeError {
  override readonly name = 'WorkloadError';
}

/** Describes a parameter's domain: "1..1000000" or "int80|sysenter". */
export function domainOf(s: ParamSpec): string {
  return s.kind === 'int' ? `${s.min}..${s.max}` : s.values.join('|');
}

/** An integer parameter spec. */
export const int = (description: string, def: number, min: number, max: number): IntParam => ({ kind: 'int', description, default: def, min, max });
/** An enum parameter spec. */
export const oneOf = (description: string, def: string, values: readonly string[]): EnumParam => ({ kind: 'enum', description, default: def, values });

/**
 * Checks raw `k=v` strings against a workload's parameters (defaults filled in). Numbers may
 * be decimal, hex (0x…) or use `_` separators.
 */
export function resolveParams(w: WorkloadDef, raw: Readonly<Record<string, string>>): ParamValues {
  const out: Record<string, number | string> = {};
  const names = Object.keys(w.params);
  for (const k of Object.keys(raw)) {
    if (!(k in w.params)) {
      throw new WorkloadError(`workload ${w.name}: unknown parameter "${k}" (parameters: ${names.length ? names.map((n) => `${n}=${domainOf(w.params[n]!)}`).join(', ') : 'none'})`);
    }
  }
  for (const [k, s] of Object.entries(w.params)) {
    const text = raw[k];
    if (text === undefined) { out[k] = s.default; continue; }
    if (s.kind === 'enum') {
      if (!s.values.includes(text)) throw new WorkloadError(`workload ${w.name}: ${k}="${text}" is not one of ${s.values.join(', ')}`);
      out[k] = text;
      continue;
    }
    const t = text.replace(/_/g, '');
    const v = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^-?[0-9]+$/.test(t) ? Number(t) : NaN;
    if (!Number.isSafeInteger(v) || v < s.min || v > s.max) throw new WorkloadError(`workload ${w.name}: ${k}="${text}" is not an integer in ${s.min}..${s.max}`);
    out[k] = v;
  }
  const problem = w.check?.(out) ?? null;
  if (problem !== null) throw new WorkloadError(`workload ${w.name}: ${problem}`);
  return out;
}

/** A small deterministic generator (xorshift32) for workload input data: disk images, seeds. */
export function xorshift32(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** `sectors` × 512 bytes of seeded data (a disk image). */
export function seededBytes(seed: number, bytes: number): Uint8Array {
  const next = xorshift32(seed * 2654435761 + 12345);
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4) {
    const v = next();
    out[i] = v & 0xff; out[i + 1] = (v >>> 8) & 0xff; out[i + 2] = (v >>> 16) & 0xff; out[i + 3] = v >>> 24;
  }
  return out;
}
