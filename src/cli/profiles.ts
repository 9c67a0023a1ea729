import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import {
  builtinProfileIds, DEFAULT_PROFILE, DEFAULT_VMM_PROFILE, hasVmmFigures, listFigures, loadProfile, type LoadedProfile,
} from '../profiles/index.js';
import { UsageError } from './errors.js';

export const PROFILES_USAGE = `usage: virtlab profiles [--json]
       virtlab profiles show ID|FILE [--json]

Lists the built-in cost profiles (id, CPU model, frequency, EPT/NPT, VPID, file), or prints
every figure of one profile with its source. To change a figure, copy the file, edit the
number (keep or update its source), and run virtlab exec ... --profile ./copy.json;
"virtlab profiles show ./copy.json" checks the copy and names any bad field.

Defaults: ${DEFAULT_PROFILE} for native runs, ${DEFAULT_VMM_PROFILE} for the virtualization modes.

options:
  --json       machine-readable output (virtlab.profiles/1)
  -h, --help   this help
`;

/** Where the command writes. */
export interface ProfilesIo {
  stdout(s: string): void;
}

/** A file path for display: relative to the working directory when inside it. */
function displayPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
}

function ghz(hz: number): string {
  return `${(hz / 1e9).toFixed(2)} GHz`;
}

/** One row of the listing. */
export interface ProfileSummary {
  readonly id: string;
  readonly model: string;
  readonly vendor: 'intel' | 'amd' | null;
  readonly frequencyHz: number;
  readonly schema: string;
  /** 'ept' / 'npt' when the CPU has second-level paging, null without; undefined-free JSON. */
  readonly nestedPaging: 'ept' | 'npt' | null;
  /** null: a v1 profile, which has no virtualization figures. */
  readonly vpid: boolean | null;
  readonly hasVirtualizationFigures: boolean;
  readonly file: string;
  readonly sha256: string;
}

/** Summarises a loaded profile for the listing. */
export function summarize(id: string, l: LoadedProfile): ProfileSummary {
  const p = l.profile;
  const v2 = hasVmmFigures(p) ? p : null;
  return {
    id,
    model: p.cpu.model,
    vendor: v2 ? v2.cpu.vendor : null,
    frequencyHz: p.cpu.frequencyHz.value,
    schema: p.schema,
    nestedPaging: v2 && v2.virtualization.nestedPaging.available.present ? (v2.virtualization.kind === 'svm' ? 'npt' : 'ept') : null,
    vpid: v2 ? v2.virtualization.vpid.present : null,
    hasVirtualizationFigures: v2 !== null,
    file: displayPath(l.path),
    sha256: l.sha256,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/**
 * `virtlab profiles [--json]` and `virtlab profiles show ID|FILE [--json]`. Returns the exit
 * status; bad input throws UsageError or ProfileError (the caller prints one line, status 2).
 */
export function profilesCommand(args: string[], io: ProfilesIo): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    // node:util parseArgs reports bad options as TypeErrors: they are bad input, not bugs.
    throw new UsageError(`profiles: ${(e as Error).message.split('.')[0]} (see virtlab profiles --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(PROFILES_USAGE);
    return 0;
  }
  const [sub, target, ...extra] = positionals;
  if (sub === undefined || sub === 'list') {
    if (target !== undefined) throw new UsageError(`profiles: unexpected argument "${target}"`);
    const rows = builtinProfileIds().map((id) => summarize(id, loadProfile(id)));
    if (values.json) {
      io.stdout(JSON.stringify({ schema: 'virtlab.profiles/1', default: DEFAULT_PROFILE, defaultVirtualization: DEFAULT_VMM_PROFILE, profiles: rows }, null, 2) + '\n');
      return 0;
    }
    const yn = (b: boolean | null): string => (b === null ? '-' : b ? 'yes' : 'no');
    io.stdout(table([
      ['ID', 'MODEL', 'FREQUENCY', 'EPT/NPT', 'VPID', 'FILE'],
      ...rows.map((r) => [
        r.id, r.model, ghz(r.frequencyHz),
        r.hasVirtualizationFigures ? (r.nestedPaging ?? 'no') : '-', yn(r.vpid), r.file,
      ]),
    ]));
    io.stdout(`(- : a virtlab.profile/1 profile, without virtualization figures; defaults: ${DEFAULT_PROFILE} native, ${DEFAULT_VMM_PROFILE} virtualized)\n`);
    return 0;
  }
  if (sub === 'show') {
    if (target === undefined) throw new UsageError('profiles show: which profile? (an id from "virtlab profiles", or a file)');
    if (extra.length) throw new UsageError(`profiles show: unexpected argument "${extra[0]}"`);
    const l = loadProfile(target);
    const figures = listFigures(l.profile);
    if (values.json) {
      io.stdout(JSON.stringify({ schema: 'virtlab.profile-figures/1', summary: summarize(l.name, l), description: l.profile.description, figures }, null, 2) + '\n');
      return 0;
    }
    const p = l.profile;
    io.stdout(`${l.name}: ${p.cpu.model}\nfile: ${displayPath(l.path)} (sha256 ${l.sha256})\nschema: ${p.schema}\n${p.description}\n\n`);
    const w = Math.max(...figures.map((f) => f.path.length));
    const vw = Math.max(...figures.map((f) => String(f.value).length));
    for (const f of figures) io.stdout(`${f.path.padEnd(w)}  ${String(f.value).padStart(vw)}  ${f.source}\n`);
    for (const n of p.notes ?? []) io.stdout(`note: ${n}\n`);
    return 0;
  }
  throw new UsageError(`profiles: unknown subcommand "${sub}" (use "virtlab profiles" or "virtlab profiles show ID")`);
}
