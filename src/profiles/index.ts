import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CostTable } from '../machine/cpu/cost-table.js';
import { INSTRUCTION_CLASSES, opClassTable, type InstructionClass } from './op-classes.js';
import { EXIT_HANDLERS, Profile, type ExitHandler, type ProfileV2 } from './schema.js';

export { EXIT_HANDLERS, Profile, ProfileV1, ProfileV2, type ExitHandler, type Figure, type Feature } from './schema.js';
export { INSTRUCTION_CLASSES, opClassTable, type InstructionClass } from './op-classes.js';

/** The profile used when none is named (native mode). */
export const DEFAULT_PROFILE = 'p6-provisional';

/** The profile the virtualization modes (full, hw, trap, pv) use when none is named. */
export const DEFAULT_VMM_PROFILE = 'skylake-2015';

/** A validated profile and where it came from. */
export interface LoadedProfile {
  readonly name: string;
  /** The file it was read from. */
  readonly path: string;
  /** SHA-256 of the file's bytes (for the run record). */
  readonly sha256: string;
  readonly profile: Profile;
}

/** A profile that cannot be used: one line naming the file and each bad field. */
export class ProfileError extends Error {
  override readonly name = 'ProfileError';
  constructor(readonly file: string, readonly detail: string, readonly issues: readonly string[] = []) {
    super(`${file}: ${detail}`);
  }
}

/**
 * The cost table the CPU consumes, plus every class figure by name, for handlers of
 * opcode groups whose members differ (e.g. F7 /6 DIV charges `div32`, FF /2 CALL `call`).
 */
export interface ProfileCostTable extends CostTable {
  readonly classCycles: Readonly<Record<InstructionClass, number>> & {
    readonly div8: number; readonly div16: number; readonly div32: number; readonly invlpg: number;
  };
}

/** Flattens a profile into the CPU's per-handler-index cost table. */
export function toCostTable(profile: Profile): ProfileCostTable {
  const classes = opClassTable();
  const base = new Uint16Array(1024);
  for (let op = 0; op < 512; op++) {
    const v = profile.classes[classes[op]!].value;
    base[op] = v;
    base[op | 0x200] = v;
  }
  const cc = Object.fromEntries(INSTRUCTION_CLASSES.map((c) => [c, profile.classes[c].value])) as Record<InstructionClass, number>;
  const e = profile.events;
  // Group members dearer than their group's class pay the difference (never negative).
  const groupExtra = new Uint16Array(8192);
  const extra = (idx: number, reg: number, cycles: number): void => {
    groupExtra[(idx << 3) | reg] = Math.max(0, cycles - base[idx & 0x1ff]!);
  };
  for (const size of [0, 0x200]) {
    extra(0xf6 | size, 4, cc.mul); extra(0xf6 | size, 5, cc.mul);
    extra(0xf6 | size, 6, e.div8.value); extra(0xf6 | size, 7, e.div8.value);
    extra(0xf7 | size, 4, cc.mul); extra(0xf7 | size, 5, cc.mul);
    const div = size ? e.div32.value : e.div16.value;
    extra(0xf7 | size, 6, div); extra(0xf7 | size, 7, div);
    extra(0xff | size, 2, cc.call); extra(0xff | size, 3, cc.callFar);
    extra(0xff | size, 4, cc.jump); extra(0xff | size, 5, cc.jumpFar);
    extra(0xff | size, 6, cc.push);
    extra(0x101 | size, 7, e.invlpg.value);
  }
  return {
    base,
    memOperand: Math.max(0, e.aluMem.value - profile.classes.aluReg.value),
    walkRef: e.pageWalkReference.value,
    repIteration: e.repIteration.value,
    branchTaken: e.branchTaken.value,
    interrupt: e.interrupt.value,
    privilegeChange: e.privilegeChange.value,
    io: e.portIo.value,
    segmentLoad: e.segmentLoadProtected.value,
    groupExtra,
    classCycles: { ...cc, div8: e.div8.value, div16: e.div16.value, div32: e.div32.value, invlpg: e.invlpg.value },
  };
}

/** Checks parsed JSON against the schema; throws ProfileError listing every bad field. */
export function validateProfile(data: unknown, file: string): Profile {
  const r = Profile.safeParse(data);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => {
    const path = i.path.length ? i.path.join('.') : '(top level)';
    return `${path}: ${i.message}`;
  });
  throw new ProfileError(file, `invalid profile: ${issues.join('; ')}`, issues);
}

/** Directories holding the built-in profiles (source tree, also when running from dist/). */
function builtinDirs(): string[] {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return [here, fileURLToPath(new URL('../../../src/profiles/', import.meta.url))];
}

/** The ids of the built-in profiles (their file names without .json), sorted. */
export function builtinProfileIds(): string[] {
  for (const dir of builtinDirs()) {
    if (!existsSync(dir)) continue;
    const ids = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    if (ids.length) return ids;
  }
  return [];
}

/** Resolves a profile name (a built-in, e.g. "p6-provisional") or a path to a file. */
export function resolveProfilePath(nameOrPath: string): string {
  if (nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json')) return nameOrPath;
  for (const dir of builtinDirs()) {
    const p = dir + nameOrPath + '.json';
    if (existsSync(p)) return p;
  }
  throw new ProfileError(nameOrPath, `no such built-in profile (built-in: ${builtinProfileIds().join(', ')}), and not a path to a file (a path must contain "/" or end in .json)`);
}

/** Loads and validates a profile by built-in name or path. */
export function loadProfile(nameOrPath: string = DEFAULT_PROFILE): LoadedProfile {
  const path = resolveProfilePath(nameOrPath);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProfileError(path, code === 'ENOENT' ? 'profile file not found' : `cannot read the profile (${code ?? String(e)})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ProfileError(path, `not valid JSON (${(e as Error).message})`);
  }
  const profile = validateProfile(data, path);
  return { name: profile.name, path, sha256: createHash('sha256').update(bytes).digest('hex'), profile };
}

/**
 * Intel SDM Vol. 3 Appendix C basic exit-reason numbers of the reasons a profile costs; the
 * VMM indexes `VmmCosts.handlerByReason` with them.
 */
export const EXIT_REASON_NUMBER: Readonly<Record<ExitHandler, number>> = {
  exceptionOrNmi: 0, externalInterrupt: 1, tripleFault: 2, interruptWindow: 7, cpuid: 10, hlt: 12,
  invlpg: 14, rdtsc: 16, vmcall: 18, crAccess: 28, ioInstruction: 30, rdmsr: 31, wrmsr: 32,
  eptViolation: 48, eptMisconfig: 49,
};

/** The virtualization figures of a v2 profile, flattened to numbers for the VMMs. */
export interface VmmCosts {
  readonly kind: 'vmx' | 'svm';
  readonly vmExit: number;
  readonly vmEntry: number;
  /** vmExit + vmEntry: what a null exit costs in hardware. */
  readonly roundTrip: number;
  /** VMM handler cycles per exit reason, by name. */
  readonly exitHandler: Readonly<Record<ExitHandler, number>>;
  /** The same, indexed by SDM basic exit-reason number (0..63); 0 for reasons without a figure. */
  readonly handlerByReason: Uint32Array;
  readonly vpid: boolean;
  readonly nestedPaging: boolean;
  readonly nestedLevels: number;
  readonly nestedWalkCacheEntries: number;
  /** Native paging-structure cache entries (0: none). */
  readonly pagingStructureCacheEntries: number;
  /** Cycles per reference of a (native or 2-D) page walk. */
  readonly walkRef: number;
  readonly sysenter: number;
  readonly sysexit: number;
  readonly monitor: {
    readonly trapSaveRestore: number; readonly emulateInstruction: number; readonly reflectEvent: number;
    readonly shadowSpaceCreate: number; readonly shadowPteDrop: number; readonly descriptorShadow: number;
  };
  readonly bt: {
    readonly translatePerInstruction: number; readonly callout: number; readonly inTcEmulation: number;
    readonly traceFault: number; readonly hiddenPageFault: number; readonly shadowPteUpdate: number;
  };
  readonly pv: {
    readonly hypercall: number; readonly mmuUpdateBase: number; readonly mmuUpdatePerEntry: number;
    readonly multicallBase: number; readonly multicallPerEntry: number; readonly eventChannelSend: number;
    readonly eventUpcall: number; readonly exceptionBounce: number; readonly grantMap: number;
    readonly grantUnmap: number; readonly vcpuInfoIfToggle: number;
  };
  readonly devices: { readonly portIoEmulation: number; readonly dmaPerByte: number };
}

/** True when the profile has the virtualization figures (schema v2). */
export function hasVmmFigures(profile: Profile): profile is ProfileV2 {
  return profile.schema === 'virtlab.profile/2';
}

/**
 * References of a two-dimensional page walk without any walk caches: each of the guest's n
 * levels and the final guest-physical address are translated through the m-level second-level
 * tables, (n + 1)(m + 1) − 1 references (Bhargava et al., ASPLOS 2008, §2).
 */
export function twoDimensionalWalkReferences(guestLevels: number, nestedLevels: number): number {
  return (guestLevels + 1) * (nestedLevels + 1) - 1;
}

/** Flattens a v2 profile's virtualization figures; a v1 profile has none (ProfileError). */
export function toVmmCosts(profile: Profile, file = profile.name): VmmCosts {
  if (!hasVmmFigures(profile)) {
    throw new ProfileError(file, 'has no virtualization figures (schema virtlab.profile/1); use a virtlab.profile/2 profile such as skylake-2015');
  }
  const v = profile.virtualization;
  const exitHandler = Object.fromEntries(EXIT_HANDLERS.map((r) => [r, v.exitHandlers[r].value])) as Record<ExitHandler, number>;
  const handlerByReason = new Uint32Array(64);
  for (const r of EXIT_HANDLERS) handlerByReason[EXIT_REASON_NUMBER[r]] = exitHandler[r];
  const num = <K extends string>(o: Record<K, { value: number }>): Record<K, number> =>
    Object.fromEntries(Object.entries(o).map(([k, f]) => [k, (f as { value: number }).value])) as Record<K, number>;
  return {
    kind: v.kind,
    vmExit: v.vmExit.value,
    vmEntry: v.vmEntry.value,
    roundTrip: v.vmExit.value + v.vmEntry.value,
    exitHandler,
    handlerByReason,
    vpid: v.vpid.present,
    nestedPaging: v.nestedPaging.available.present,
    nestedLevels: v.nestedPaging.levels.value,
    nestedWalkCacheEntries: v.nestedPaging.nestedWalkCacheEntries.value,
    pagingStructureCacheEntries: profile.tlb.pagingStructureCacheEntries.value,
    walkRef: profile.events.pageWalkReference.value,
    sysenter: profile.transitions.sysenter.value,
    sysexit: profile.transitions.sysexit.value,
    monitor: num(profile.monitor),
    bt: num(profile.binaryTranslation),
    pv: num(profile.paravirtualization),
    devices: num(profile.devices),
  };
}

/** One figure or feature of a profile, with its dotted path (for `virtlab profiles show`). */
export interface FigureEntry {
  readonly path: string;
  readonly value: number | boolean;
  readonly source: string;
}

/** Every figure and feature of a profile, in file order. */
export function listFigures(profile: Profile): FigureEntry[] {
  const out: FigureEntry[] = [];
  const walk = (o: unknown, path: string): void => {
    if (!o || typeof o !== 'object' || Array.isArray(o)) return;
    const r = o as Record<string, unknown>;
    if (typeof r.source === 'string' && ('value' in r || 'present' in r)) {
      out.push({ path, value: ('value' in r ? r.value : r.present) as number | boolean, source: r.source });
      return;
    }
    for (const [k, v] of Object.entries(r)) walk(v, path ? `${path}.${k}` : k);
  };
  walk(profile, '');
  return out;
}
