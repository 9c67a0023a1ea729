import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CostTable } from '../machine/cpu/cost-table.js';
import { INSTRUCTION_CLASSES, opClassTable, type InstructionClass } from './op-classes.js';
import { Profile } from './schema.js';

export { Profile } from './schema.js';
export { INSTRUCTION_CLASSES, opClassTable, type InstructionClass } from './op-classes.js';

/** The profile used when none is named. */
export const DEFAULT_PROFILE = 'p6-provisional';

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

/** Resolves a profile name (a built-in, e.g. "p6-provisional") or a path to a file. */
export function resolveProfilePath(nameOrPath: string): string {
  if (nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json')) return nameOrPath;
  for (const dir of builtinDirs()) {
    const p = dir + nameOrPath + '.json';
    if (existsSync(p)) return p;
  }
  throw new ProfileError(nameOrPath, 'no such built-in profile, and not a path to a file (a path must contain "/" or end in .json)');
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
