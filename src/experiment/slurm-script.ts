/**
 * The batch script of the Slurm back end: one job array over the chunks of a chunk manifest;
 * task K runs `virtlab run-chunk --manifest M --chunk K` on a compute node. The array range
 * and throttle (`--array=LIST%N`) are given on the sbatch command line, so that resubmitting
 * a subset of chunks reuses the same script.
 */
import { join } from 'node:path';
import { packageRoot } from './store.js';
import { SlurmError } from './slurm-cli.js';

/** Options of the Slurm back end that end up in the script. */
export interface SlurmScriptOptions {
  readonly jobName: string;
  readonly partition?: string;
  readonly account?: string;
  /** Slurm's time format (e.g. "30", "1:00:00", "1-0"). */
  readonly time?: string;
  readonly cpusPerTask: number;
  /** Further `#SBATCH` lines, without the prefix (e.g. "--mem=2G", "--qos=short"). */
  readonly extra: readonly string[];
  /** Node on the compute nodes (default: this process's node, which must be there too). */
  readonly node?: string;
}

/** How to start this virtlab: node, then its arguments (the compiled CLI, or the TS sources). */
export function virtlabCommand(node = process.execPath): { cwd: string; argv: string[] } {
  const root = packageRoot();
  if (import.meta.url.endsWith('.ts')) {
    // The source tree (tests, development): ts-node resolves from the current directory.
    return { cwd: root, argv: [node, '--import', join(root, 'scripts/ts-register.mjs'), join(root, 'src/cli/main.ts')] };
  }
  return { cwd: root, argv: [node, join(root, 'dist/src/cli/main.js')] };
}

/** Single-quotes a word for bash. */
export const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Paths on #SBATCH lines cannot be quoted, and % starts a Slurm filename pattern. */
function checkSbatchPath(p: string): string {
  if (/[\s%"'\\]/.test(p)) throw new SlurmError(`${p}: the experiment directory's path holds a space, quote, backslash or %, which #SBATCH lines cannot carry: choose another -o directory`);
  return p;
}

/**
 * The script text. `logDir`: where per-task logs go (chunk-<K>.job-<J>.out/.err);
 * `manifest`: the chunk manifest (absolute paths both).
 */
export function batchScript(o: SlurmScriptOptions, manifest: string, logDir: string): string {
  for (const [k, v] of [['partition', o.partition], ['account', o.account], ['time', o.time], ['job name', o.jobName]] as const) {
    if (v !== undefined && !/^[A-Za-z0-9_.:,+-]+$/.test(v)) throw new SlurmError(`Slurm ${k} "${v}": expected letters, digits and _.:,+- only`);
  }
  for (const l of o.extra) {
    if (!/^--?[A-Za-z]/.test(l) || /[\n\r]/.test(l)) throw new SlurmError(`--sbatch "${l}": expected one sbatch option such as --mem=2G`);
  }
  const cmd = virtlabCommand(o.node);
  const lines = [
    '#!/bin/bash',
    '# Written by `virtlab experiment --backend slurm`: one array task per chunk of the manifest.',
    `#SBATCH --job-name=${o.jobName}`,
    `#SBATCH --cpus-per-task=${o.cpusPerTask}`,
    '#SBATCH --ntasks=1',
    `#SBATCH --output=${join(checkSbatchPath(logDir), 'chunk-%a.job-%A.out')}`,
    `#SBATCH --error=${join(logDir, 'chunk-%a.job-%A.err')}`,
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(o.account ? [`#SBATCH --account=${o.account}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    ...o.extra.map((l) => `#SBATCH ${l}`),
    'set -eu',
    'echo "virtlab chunk ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID} on $(hostname), started $(date -u +%FT%TZ)"',
    `cd ${shQuote(cmd.cwd)}`,
    `exec ${cmd.argv.map(shQuote).join(' ')} run-chunk --manifest ${shQuote(manifest)} --chunk "$SLURM_ARRAY_TASK_ID"`,
    '',
  ];
  return lines.join('\n');
}

/** `--array=` value: chunk indices as ranges, with the throttle. */
export function arraySpec(chunks: readonly number[], throttle?: number): string {
  const parts: string[] = [];
  const s = [...chunks].sort((a, b) => a - b);
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    parts.push(j === i ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return parts.join(',') + (throttle ? `%${throttle}` : '');
}
