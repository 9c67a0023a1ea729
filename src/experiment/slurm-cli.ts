/**
 * Slurm's command-line tools, called with execFile (no shell: nothing is ever interpreted by
 * one). Parses `sbatch --parsable` and the text output of `squeue` (its `--json` ignores
 * filters in Slurm 22.05). `sacct` needs an accounting database and is used only if it works.
 */
import { execFile } from 'node:child_process';

/** A Slurm tool is missing, refused, or answered something unexpected. */
export class SlurmError extends Error {
  override readonly name: string = 'SlurmError';
}

interface ExecResult { code: number; stdout: string; stderr: string }

/** Runs a tool; rejects only if it cannot be started (ENOENT and the like). */
export function run(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && typeof e.code === 'string') {
        reject(e.code === 'ENOENT'
          ? new SlurmError(`${cmd} not found on PATH: run on a Slurm login node (or with Slurm's client tools installed), or use --backend local`)
          : new SlurmError(`${cmd}: could not be run (${e.message.split('\n')[0]})`));
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const firstLine = (s: string): string => s.trim().split('\n').filter(Boolean).pop() ?? '(no message)';

/** `sbatch --parsable ARGS SCRIPT`: the job id. A rejection becomes a SlurmError with Slurm's message. */
export async function sbatch(args: readonly string[], script: string): Promise<string> {
  const r = await run('sbatch', ['--parsable', ...args, script]);
  if (r.code !== 0) {
    throw new SlurmError(`sbatch rejected the job: ${firstLine(r.stderr || r.stdout)} (check --partition, --account, --time and the --sbatch lines; the script is ${script})`);
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const id = r.stdout.trim().split(';')[0]!;
  if (!/^\d+$/.test(id)) throw new SlurmError(`sbatch answered "${r.stdout.trim()}", expected a job id (sbatch --parsable)`);
  return id;
}

/** One array task as squeue reports it. */
export interface TaskState { readonly task: number; readonly state: string; readonly reason: string }

/** States after which a task will not run again by itself. */
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'SPECIAL_EXIT', 'REVOKED']);
export const isTerminal = (state: string): boolean => TERMINAL.has(state.replace(/\+$/, '').split(' ')[0]!);

/** Expands an array-index expression as squeue prints it ("3", "0-4%2", "[1,3-5]"). */
export function expandIndices(spec: string): number[] {
  const body = spec.replace(/^\[|\]$/g, '').replace(/%\d+$/, '').replace(/\]$/, '');
  const out: number[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!m) return [];
    const a = Number(m[1]), b = m[2] !== undefined ? Number(m[2]) : a, step = m[3] !== undefined ? Number(m[3]) : 1;
    for (let i = a; i <= b; i += step) out.push(i);
  }
  return out;
}

/**
 * Parses `squeue -h -t all -r -j ID -o '%i|%A|%K|%T|%r'` (job id, array job id, array task
 * index, state, reason). Pending tasks not yet split off may come as one line with a range.
 */
export function parseSqueue(text: string): TaskState[] {
  const out: TaskState[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [, , idx = '', state = '', reason = ''] = line.split('|');
    for (const task of expandIndices(idx)) out.push({ task, state: state.trim(), reason: reason.trim() });
  }
  return out;
}

/**
 * The tasks of array job `jobId`, or null if Slurm no longer knows the job (it ended more
 * than MinJobAge ago, or the controller lost it): then only the result files can tell.
 */
export async function squeueTasks(jobId: string): Promise<TaskState[] | null> {
  const r = await run('squeue', ['-h', '-t', 'all', '-r', '-j', jobId, '-o', '%i|%A|%K|%T|%r']);
  if (r.code !== 0) {
    if (/Invalid job id/i.test(r.stderr)) return null;
    throw new SlurmError(`squeue failed (exit ${r.code}): ${firstLine(r.stderr)}`);
  }
  return parseSqueue(r.stdout);
}

/** Cancels a job (all its array tasks). */
export async function scancel(jobId: string): Promise<void> {
  const r = await run('scancel', [jobId], 20_000);
  if (r.code !== 0) throw new SlurmError(`scancel ${jobId} failed: ${firstLine(r.stderr)}`);
}

/**
 * State and exit code of each array task from `sacct`, or null when accounting is not
 * available (no slurmdbd: sacct exits 1 saying so).
 */
export async function sacctTasks(jobId: string): Promise<Map<number, { state: string; exitCode: string }> | null> {
  let r: ExecResult;
  try { r = await run('sacct', ['-n', '-P', '-X', '-j', jobId, '-o', 'JobID,State,ExitCode'], 20_000); } catch { return null; }
  if (r.code !== 0) return null;
  const out = new Map<number, { state: string; exitCode: string }>();
  for (const line of r.stdout.split('\n')) {
    const [id = '', state = '', exitCode = ''] = line.split('|');
    const m = /_(\d+)$/.exec(id);
    if (m) out.set(Number(m[1]), { state, exitCode });
  }
  return out;
}
