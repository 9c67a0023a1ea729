/** The committed example traces (traces/) and the modes their digests are kept for. */
import type { ReplayOptions } from '../../src/trace/replayer.js';
import { P6, VMM } from './helpers.js';

/** A committed trace: a workload recorded natively, or under pv (`mode: 'pv'`, with VMM's profile). */
export interface CommittedTrace { file: string; workload: string; params: Record<string, string | number>; seed: number | null; mode?: 'pv' }

export const COMMITTED: readonly CommittedTrace[] = [
  { file: 'forkwait-n10.vlt', workload: 'forkwait', params: { n: 10 }, seed: null },
  { file: 'database-t10.vlt', workload: 'database', params: { txns: 10, dbsize: 16 }, seed: 1 },
  { file: 'pingpong-net-n10.vlt', workload: 'pingpong', params: { via: 'net', n: 10 }, seed: 1 },
  { file: 'syscall-n200.vlt', workload: 'syscall', params: { n: 200 }, seed: null },
  // pv: forkwait long enough for the pv timer's VIRQs; database for blkback's completions.
  { file: 'forkwait-n60-pv.vlt', workload: 'forkwait', params: { n: 60 }, seed: null, mode: 'pv' },
  { file: 'database-t10-pv.vlt', workload: 'database', params: { txns: 10, dbsize: 16 }, seed: 1, mode: 'pv' },
];

export const COMMITTED_MODES: readonly { id: string; options: ReplayOptions }[] = [
  { id: 'native/p6-provisional', options: { mode: 'native', profile: P6 } },
  { id: 'hw-nested/skylake-2015', options: { mode: 'hw', profile: VMM, modeOptions: { paging: 'nested' } } },
  { id: 'hw-shadow/skylake-2015', options: { mode: 'hw', profile: VMM, modeOptions: { paging: 'shadow' } } },
];

/** A pv trace replays under pv only. */
export const COMMITTED_PV_MODES: readonly { id: string; options: ReplayOptions }[] = [
  { id: 'pv/skylake-2015', options: { mode: 'pv', profile: VMM } },
];

/** The modes `t`'s digests are kept for. */
export function modesFor(t: CommittedTrace): readonly { id: string; options: ReplayOptions }[] {
  return t.mode === 'pv' ? COMMITTED_PV_MODES : COMMITTED_MODES;
}
