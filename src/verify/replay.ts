/**
 * Counterexample files and their replay (issue 8, "Bad input"; docs/verification.md,
 * "Counterexample files"): `virtlab verify --save FILE`, `--mutants -o DIR` write them,
 * `virtlab verify --replay FILE` runs them again under the conditions that produced them
 * (property, configurations, mutant) and prints the listing and a result per configuration.
 *
 * A file is `{ "schema": "virtlab.counterexample/1", property, configs, seed, runs, mutant,
 * message, listing, "case": SavedCase }`. The case's kind is told by its top-level key, and
 * `CASE_KINDS` maps each key to the kind's replay function: adding a kind is one line there.
 * Files from before the schema (the bare case: a guest program, `{ "pv": [...] }`,
 * `{ "user": {...} }`) are still read, as cases of an unknown property.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { checkMutant, MUTANT_NAMES, withMutant } from '../vmm/mutants.js';
import { buildGuest, listing, type GuestProgram } from './guest-program.js';
import { accountingCheckOne, determinismCheckOne, resourceCheckOne } from './properties.js';
import { IO_CONFIGS, ioControlRun } from './io-control.js';
import { replayKernelCase } from './kernel-program.js';
import { replayPairCase } from './noninterference.js';
import { actionText, runPvActions, type PvAction } from './pv-isolation.js';
import { CONFIGS, runProgram, type Config, type VerifyRun } from './run.js';
import { difference, supported, unsupportedNotes, type Counterexample, type PropertyReport, type SavedCase } from './search.js';
import { USER_CONFIGS, runUserGuest, buildUserGuest, userDifference, userListing, type UserGuestProgram } from './user-program.js';

/** The file format's name and version. */
export const CASE_SCHEMA = 'virtlab.counterexample/1';

/** A counterexample file: the case and what produced it. */
export interface CaseFile {
  readonly schema: typeof CASE_SCHEMA;
  /** The property whose check failed (null: unknown, a file from before the schema). */
  readonly property: string | null;
  /** The configurations the property ran (null: the kind's defaults). */
  readonly configs: readonly Config[] | null;
  readonly seed: number | null;
  /** Runs the search made (to the first counterexample, when it found one). */
  readonly runs: number | null;
  /** The mutant active when it was found (`--replay` activates it again), or null. */
  readonly mutant: string | null;
  /** The failure as the search reported it, and the case's listing (for the reader; not used by the replay). */
  readonly message: string;
  readonly listing: readonly string[];
  readonly case: SavedCase;
}

/** The file for counterexample `cx` found by `property` (with `mutant` active). */
export function caseFile(cx: Counterexample, produced: { property: string; configs: readonly Config[]; seed: number; runs: number; mutant: string | null }): CaseFile {
  return {
    schema: CASE_SCHEMA, property: produced.property, configs: [...produced.configs], seed: produced.seed, runs: produced.runs,
    mutant: produced.mutant, message: cx.message, listing: cx.listing, case: cx.program,
  };
}

/** The file for a property report's counterexample (null when it has none). */
export function reportCaseFile(r: PropertyReport, mutant: string | null): CaseFile | null {
  return r.counterexample === null ? null : caseFile(r.counterexample, { property: r.property, configs: r.configs, seed: r.seed, runs: r.runs, mutant });
}

/** Writes `f` to `path` (directories created). */
export function writeCaseFile(path: string, f: CaseFile): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(f, null, 2) + '\n');
}

// ---- the kinds ----

/** How a case is replayed. */
export interface ReplayOptions {
  /** Configurations to run (null: the kind's or the property's defaults). */
  readonly configs: readonly Config[] | null;
  /** The property that produced the case (null: unknown). */
  readonly property: string | null;
}

/** One configuration's (or step's) result: whether it shows the failure, and what it shows. */
export interface ReplayLine {
  readonly config: string;
  readonly failed: boolean;
  readonly detail: string;
}

export interface ReplayResult {
  readonly listing: readonly string[];
  readonly results: readonly ReplayLine[];
  /** Printed before the results (e.g. the pv hypercall log). */
  readonly log?: readonly string[];
  /** A kind's own printout (kinds replayed through `okLines`), printed as is. */
  readonly lines?: readonly string[];
  /** Configurations not run, and why. */
  readonly notes?: readonly string[];
}

/**
 * A kind's replay: `c` is the whole case object (its key included), as read from the file;
 * a malformed case throws `CaseError` ("expected ..."). Runs under the mutant the dispatcher
 * activated.
 */
export type ReplayFn = (c: unknown, o: ReplayOptions) => ReplayResult;

/** A malformed case or an unreplayable one: the message says what was expected. */
export class CaseError extends Error {
  override readonly name = 'CaseError';
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const numArray = (x: unknown): boolean => Array.isArray(x) && x.every((v) => typeof v === 'number');
const opArray = (x: unknown): boolean => Array.isArray(x) && x.every((v) => isObj(v) && typeof v['op'] === 'string');

/** A flat-harness program's per-configuration check for one property: the failure, or null. */
type GuestCheck = (p: GuestProgram, config: Config, ctx: { bytes: Uint8Array; native: () => VerifyRun }) => string | null;

/** Per property, its default configurations and its check of one configuration (exported by properties.ts and io-control.ts). */
const GUEST_CHECKS: Readonly<Record<string, { configs: readonly Config[]; check: GuestCheck }>> = {
  equivalence: {
    configs: CONFIGS.filter((c) => c !== 'trap' && c !== 'native'),
    check: (p, c, x) => difference(x.native(), runProgram(p, c, { bytes: x.bytes }), p.paging),
  },
  'trap-not-equivalent': { configs: ['trap'], check: (p, c, x) => difference(x.native(), runProgram(p, c, { bytes: x.bytes }), p.paging) },
  'resource-control': { configs: CONFIGS.filter((c) => c !== 'native'), check: (p, c, x) => resourceCheckOne(p, c, x.bytes) },
  accounting: { configs: CONFIGS, check: (p, c, x) => accountingCheckOne(p, c, x.bytes) },
  determinism: { configs: CONFIGS, check: (p, c, x) => determinismCheckOne(p, c, x.bytes) },
  'io-control': { configs: IO_CONFIGS, check: (p, c, x) => (IO_CONFIGS.includes(c) ? ioControlRun(p, c, x.bytes) : null) },
};

/** A flat-harness guest program, checked as the property that produced it checks it (unknown property: equivalence). */
export const replayGuestCase: ReplayFn = (c, o) => {
  if (!isObj(c) || !numArray(c['regs']) || !opArray(c['items']) || typeof c['paging'] !== 'boolean') {
    throw new CaseError('expected a guest program: { "regs": [numbers], "items": [{ "op": ... }], "paging": true|false }');
  }
  const p = c as unknown as GuestProgram;
  if (o.property === 'noninterference') {
    throw new CaseError("this noninterference counterexample holds only VM A's program (B's two secrets, the TLB policy and the quantum were not saved): it cannot be replayed alone");
  }
  const check = GUEST_CHECKS[o.property ?? 'equivalence'];
  if (check === undefined) throw new CaseError(`property "${o.property}" has no replay for guest programs (known: ${Object.keys(GUEST_CHECKS).join(', ')}, noninterference)`);
  let bytes: Uint8Array, lines: string[];
  try {
    // An item of no known kind emits nothing (the emitter has no default case): refuse it.
    const walk = (xs: readonly { op: string; body?: unknown }[], where: string): void => xs.forEach((it, i) => {
      if (listing([it as never]).length === 0) throw new CaseError(`expected guest-program items: items[${where}${i}] has the unknown op ${JSON.stringify(it.op)}`);
      // Loops, ring-3 and CLI regions: their bodies too.
      if (opArray(it.body)) walk(it.body as { op: string }[], `${where}${i}].body[`);
    });
    walk(p.items as never, '');
    bytes = buildGuest(p);
    lines = listing(p.items);
  } catch (e) {
    if (e instanceof CaseError) throw e;
    throw new CaseError(`expected a guest program whose items assemble (${(e as Error).message.split('\n')[0]})`);
  }
  // A bare case (unknown property) is compared with native under every configuration, as before the schema.
  const asked = o.configs ?? (o.property === null ? CONFIGS.filter((x) => x !== 'native') : check.configs);
  const configs = supported(asked);
  let ref: VerifyRun | null = null;
  const ctx = { bytes, native: (): VerifyRun => (ref ??= runProgram(p, 'native', { bytes })) };
  const results: ReplayLine[] = [];
  for (const cfg of configs) {
    if (o.property === 'io-control' && !IO_CONFIGS.includes(cfg)) continue;
    const d = check.check(p, cfg, ctx);
    results.push({ config: cfg, failed: d !== null, detail: d ?? (o.property === null || o.property === 'equivalence' || o.property === 'trap-not-equivalent' ? 'same outcome as native' : 'holds') });
  }
  // resource-control also checks DMA on a native machine (not one of its configurations).
  if (o.property === 'resource-control') {
    const d = check.check(p, 'native', ctx);
    results.push({ config: 'native + DMA', failed: d !== null, detail: d ?? 'nothing written above RAM' });
  }
  const notes = unsupportedNotes(asked);
  if (o.property === 'io-control') for (const cfg of configs) if (!IO_CONFIGS.includes(cfg)) notes.push(`${cfg} not run: no I/O bitmaps`);
  return { listing: lines, results, notes };
};

/** A pv-isolation case: the hypercall sequence on a freshly booted pv domain. */
export const replayPvCase: ReplayFn = (c) => {
  if (!isObj(c) || !opArray(c['pv'])) throw new CaseError('expected a pv-isolation case: { "pv": [{ "op": ... }, ...] }');
  const actions = c['pv'] as PvAction[];
  let lines: string[];
  try { lines = actions.map(actionText); } catch (e) { throw new CaseError(`expected pv actions of known kinds (${(e as Error).message.split('\n')[0]})`); }
  // An unknown op (or a missing field) has no text, or "undefined" in it.
  const badAt = lines.findIndex((l) => typeof l !== 'string' || /undefined|NaN/.test(l));
  if (badAt >= 0) throw new CaseError(`expected pv actions of known kinds with all their fields: pv[${badAt}] (op ${JSON.stringify(actions[badAt]!.op)}) is not one`);
  try {
    const r = runPvActions(actions);
    return { listing: lines, log: r.log, results: [{ config: 'pv', failed: r.violation !== null, detail: r.violation ?? 'all invariants hold' }] };
  } catch (e) {
    return { listing: lines, results: [{ config: 'pv', failed: true, detail: `the hypervisor threw: ${(e as Error).message.split('\n')[0]}` }] };
  }
};

/** A user-equivalence case: the ring-3 program under the virtlab kernel, native and under each configuration. */
export const replayUserCase: ReplayFn = (c, o) => {
  const u = isObj(c) ? c['user'] : undefined;
  if (!isObj(u) || !numArray(u['regs']) || !opArray(u['items'])) throw new CaseError('expected a user-equivalence case: { "user": { "regs": [numbers], "items": [{ "op": ... }] } }');
  const p = u as unknown as UserGuestProgram;
  let image: Uint8Array, lines: string[];
  try {
    image = buildUserGuest(p);
    lines = userListing(p.items);
  } catch (e) {
    throw new CaseError(`expected a user program whose items assemble in ring 3 (${(e as Error).message.split('\n')[0]})`);
  }
  const ref = runUserGuest(image, 'native');
  const results: ReplayLine[] = [];
  // user-equivalence's part 1 requires the native run to print its dump line and exit 0.
  const clean = ref.initExit === 0 && / sum=\d+\n$/.test(ref.console);
  results.push({ config: 'native', failed: !clean, detail: clean ? 'finished cleanly' : `did not finish cleanly: ${ref.exit} (status ${ref.status})` });
  for (const cfg of o.configs ?? USER_CONFIGS.filter((x) => x !== 'native')) {
    if (cfg === 'native') continue;
    const d = userDifference(ref, runUserGuest(image, cfg));
    results.push({ config: cfg, failed: d !== null, detail: d ?? 'same outcome as native' });
  }
  return { listing: lines, results };
};

/** A kind of case: the top-level key that tells it, what it looks like (for errors), its replay. */
export interface CaseKind {
  readonly key: string;
  readonly what: string;
  readonly replay: ReplayFn;
}

/**
 * A kind whose module replays with `(case, configs?) => { ok, lines }` (its own printout;
 * a bad case throws RangeError "replay: ...") as a `ReplayFn`: the lines are printed as they
 * are, and one result says whether the failure shows. `shape` checks the case first.
 */
function okLines(f: (c: never, configs?: readonly Config[]) => { ok: boolean; lines: string[] }, what: string, shape: (c: Record<string, unknown>) => boolean): ReplayFn {
  return (c, o) => {
    if (!isObj(c) || !shape(c)) throw new CaseError(`expected ${what}`);
    try {
      const r = f(c as never, o.configs ?? undefined);
      return { listing: [], lines: r.lines, results: [{ config: o.configs?.join(', ') ?? 'the saved configurations', failed: !r.ok, detail: r.ok ? 'holds' : 'fails (see above)' }] };
    } catch (e) {
      if (e instanceof RangeError && e.message.startsWith('replay: ')) throw new CaseError(e.message.slice('replay: '.length));
      throw e;
    }
  };
}

const KERNEL_WHAT = '{ "kernel": { regs, items, hostile } } (kernel-equivalence, pv-resource-control)';
const PAIR_WHAT = '{ "pair": { harness, a, b0, b1, policy, schedule } } (noninterference)';

/**
 * The kinds, by the case's top-level key (the first match wins; a flat-harness program, told
 * by `items`, comes last). A kind added elsewhere is one line here: its key, its shape, and
 * its module's `ReplayFn` (or `okLines` around a `(case, configs?) => { ok, lines }`).
 */
export const CASE_KINDS: readonly CaseKind[] = [
  { key: 'pv', what: '{ "pv": [actions] } (pv-isolation)', replay: replayPvCase },
  { key: 'user', what: '{ "user": { regs, items } } (user-equivalence)', replay: replayUserCase },
  { key: 'kernel', what: KERNEL_WHAT, replay: okLines(replayKernelCase, KERNEL_WHAT, (c) => isObj(c['kernel']) && opArray(c['kernel']['items']) && numArray(c['kernel']['regs'])) },
  { key: 'pair', what: PAIR_WHAT, replay: okLines(replayPairCase, PAIR_WHAT, (c) => isObj(c['pair'])) },
  { key: 'items', what: '{ regs, items, paging } (a flat-harness guest program)', replay: replayGuestCase },
];

/** The kind of `c` (by its top-level key), or null. */
export function caseKind(c: unknown): CaseKind | null {
  if (!isObj(c)) return null;
  return CASE_KINDS.find((k) => Object.prototype.hasOwnProperty.call(c, k.key)) ?? null;
}

// ---- reading a file ----

/** A bad counterexample file; the message is one line naming the file. */
export class CaseFileError extends Error {
  override readonly name = 'CaseFileError';
}

/**
 * Where a JSON text first goes wrong (offset) and what was expected there, or null if it is
 * valid JSON (JSON.parse's messages do not always give a position).
 */
export function jsonSyntaxError(t: string): { offset: number; expected: string } | null {
  let i = 0;
  const stop = (expected: string): never => { throw { offset: i, expected }; };
  const ws = (): void => { while (i < t.length && (t[i] === ' ' || t[i] === '\t' || t[i] === '\n' || t[i] === '\r')) i++; };
  const str = (): void => {
    i++;
    while (i < t.length) {
      const ch = t.charCodeAt(i);
      if (ch === 0x22) { i++; return; }
      if (ch < 0x20) stop('a closing \'"\' (a string cannot hold a control character)');
      if (ch === 0x5c) {
        i++;
        if (t[i] === 'u') { for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(t[i + k] ?? '')) { i += k; stop('four hex digits after \\u'); } i += 5; continue; }
        if (!'"\\/bfnrt'.includes(t[i] ?? 'x') || i >= t.length) stop('an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
      }
      i++;
    }
    stop('a closing \'"\'');
  };
  const value = (depth: number): void => {
    if (depth > 512) stop('less nesting');
    ws();
    const c = t[i];
    if (c === '{') {
      i++; ws();
      if (t[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (t[i] !== '"') stop('a property name in double quotes');
        str(); ws();
        if (t[i] !== ':') stop("':'");
        i++; value(depth + 1); ws();
        if (t[i] === ',') { i++; continue; }
        if (t[i] === '}') { i++; return; }
        stop("',' or '}'");
      }
    }
    if (c === '[') {
      i++; ws();
      if (t[i] === ']') { i++; return; }
      for (;;) {
        value(depth + 1); ws();
        if (t[i] === ',') { i++; continue; }
        if (t[i] === ']') { i++; return; }
        stop("',' or ']'");
      }
    }
    if (c === '"') { str(); return; }
    const num = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    num.lastIndex = i;
    if (c !== undefined && /[-0-9]/.test(c) && num.test(t)) { i = num.lastIndex; return; }
    for (const w of ['true', 'false', 'null']) if (t.startsWith(w, i)) { i += w.length; return; }
    stop('a JSON value (object, array, string, number, true, false or null)');
  };
  try {
    value(0); ws();
    if (i < t.length) stop('the end of the file');
    return null;
  } catch (e) {
    if (typeof e === 'object' && e !== null && 'offset' in e) return e as { offset: number; expected: string };
    throw e;
  }
}

/** Line and column (1-based) of `offset` in `t`. */
function lineColumn(t: string, offset: number): { line: number; column: number } {
  let line = 1, start = 0;
  for (let k = 0; k < offset && k < t.length; k++) if (t[k] === '\n') { line++; start = k + 1; }
  return { line, column: offset - start + 1 };
}

const KINDS_TEXT = (): string => CASE_KINDS.map((k) => k.what).join('; ');

/** Reads and checks a counterexample file (the bare cases of older files too). */
export function readCaseFile(path: string): { file: CaseFile; kind: CaseKind } {
  const bad = (msg: string): never => { throw new CaseFileError(`${path}: ${msg}`); };
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch (e) { bad(`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    const at = jsonSyntaxError(text);
    if (at === null) bad('not valid JSON');
    const { line, column } = lineColumn(text, at!.offset);
    bad(`not valid JSON at line ${line}, column ${column}${at!.offset >= text.length ? ' (the end of the file)' : ''}: expected ${at!.expected}`);
  }
  if (!isObj(data)) bad(`expected a JSON object: a ${CASE_SCHEMA} file, or a bare case (${KINDS_TEXT()})`);
  const d = data as Record<string, unknown>;
  let file: CaseFile;
  if (d['schema'] === undefined) {
    // A file from before the schema: the bare case.
    file = { schema: CASE_SCHEMA, property: null, configs: null, seed: null, runs: null, mutant: null, message: '', listing: [], case: d as unknown as SavedCase };
  } else {
    if (d['schema'] !== CASE_SCHEMA) bad(`unknown schema ${JSON.stringify(d['schema'])} (expected "${CASE_SCHEMA}")`);
    const field = (k: string, ok: (x: unknown) => boolean, what: string): void => { if (d[k] !== undefined && d[k] !== null && !ok(d[k])) bad(`"${k}": expected ${what}`); };
    field('property', (x) => typeof x === 'string', 'a property name');
    field('configs', (x) => Array.isArray(x) && x.every((c) => typeof c === 'string' && CONFIGS.includes(c)), `an array of configurations (${CONFIGS.join(', ')})`);
    field('seed', (x) => Number.isSafeInteger(x), 'an integer');
    field('runs', (x) => Number.isSafeInteger(x), 'an integer');
    field('mutant', (x) => typeof x === 'string' && MUTANT_NAMES.includes(x), `a mutant name (known: ${MUTANT_NAMES.join(', ')})`);
    if (!('case' in d)) bad(`expected a "case" (${KINDS_TEXT()})`);
    file = {
      schema: CASE_SCHEMA, property: (d['property'] as string | undefined) ?? null, configs: (d['configs'] as Config[] | undefined) ?? null,
      seed: (d['seed'] as number | undefined) ?? null, runs: (d['runs'] as number | undefined) ?? null, mutant: (d['mutant'] as string | undefined) ?? null,
      message: typeof d['message'] === 'string' ? d['message'] : '', listing: Array.isArray(d['listing']) ? d['listing'] as string[] : [], case: d['case'] as SavedCase,
    };
  }
  const kind = caseKind(file.case);
  if (kind === null) bad(`expected a counterexample case with one of the keys ${CASE_KINDS.map((k) => `"${k.key}"`).join(', ')} (${KINDS_TEXT()})`);
  return { file, kind: kind! };
}

/** A replayed file: the result and the verdict (failed: some configuration shows the failure). */
export interface Replayed {
  readonly file: CaseFile;
  readonly kind: CaseKind;
  /** The mutant active during the replay (the file's, or the override). */
  readonly mutant: string | null;
  readonly result: ReplayResult;
  readonly failed: boolean;
}

/**
 * Replays counterexample file `path`: its mutant active (`mutant` overrides: a name, or null
 * for none), its configurations (or `configs`). Throws `CaseFileError` for a bad file.
 */
export function replayFile(path: string, o: { configs?: readonly Config[]; mutant?: string | null } = {}): Replayed {
  const { file, kind } = readCaseFile(path);
  const mutant = o.mutant !== undefined ? o.mutant : file.mutant;
  if (mutant !== null) { try { checkMutant(mutant); } catch (e) { throw new CaseFileError(`${path}: ${(e as Error).message}`); } }
  let result: ReplayResult;
  try {
    result = withMutant(mutant, () => kind.replay(file.case, { configs: o.configs ?? file.configs, property: file.property }));
  } catch (e) {
    if (e instanceof CaseError) throw new CaseFileError(`${path}: ${e.message}`);
    throw e;
  }
  return { file, kind, mutant, result, failed: result.results.some((r) => r.failed) };
}
