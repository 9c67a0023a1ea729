/** The committed example traces (traces/) and the modes their digests are kept for. */
import type { ReplayOptions } from '../../src/trace/replayer.js';
import { P6, VMM } from './helpers.js';

export const COMMITTED: readonly { file: string; workload: string; params: Record<string, string | number>; seed: number | null }[] = [
  { file: 'forkwait-n10.vlt', workload: 'forkwait', params: { n: 10 }, seed: null },
  { file: 'database-t10.vlt', workload: 'database', params: { txns: 10, dbsize: 16 }, seed: 1 },
  { file: 'pingpong-net-n10.vlt', workload: 'pingpong', params: { via: 'net', n: 10 }, seed: 1 },
  { file: 'syscall-n200.vlt', workload: 'syscall', params: { n: 200 }, seed: null },
];

export const COMMITTED_MODES: readonly { id: string; options: ReplayOptions }[] = [
  { id: 'native/p6-provisional', options: { mode: 'native', profile: P6 } },
  { id: 'hw-nested/skylake-2015', options: { mode: 'hw', profile: VMM, modeOptions: { paging: 'nested' } } },
  { id: 'hw-shadow/skylake-2015', options: { mode: 'hw', profile: VMM, modeOptions: { paging: 'shadow' } } },
];
