/** A worker thread that replays a trace and posts the run record's bytes (determinism test). */
import { parentPort, workerData } from 'node:worker_threads';
import { loadProfile } from '../../src/profiles/index.js';
import { replayTrace } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';

const { bytes, mode, profile } = workerData as { bytes: Uint8Array; mode: 'native' | 'hw' | 'pv'; profile: string };
const r = replayTrace(new Uint8Array(bytes), { mode, profile: loadProfile(profile) });
parentPort!.postMessage({ record: serializeRunRecord(r.record), divergence: r.divergence });
