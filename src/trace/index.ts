/**
 * Traces (docs/trace-format.md): record a guest once, replay it under any mode with the same
 * inputs at the same logical positions. The library API for the CLI and the experiment runner.
 */
export { recordTrace, CHECKPOINT_INTERVAL, RAM_DIGEST_EVERY, type RecordSpec, type Recording } from './recorder.js';
export { replayTrace, formatDivergence, type Divergence, type ReplayOptions, type ReplayRun } from './replayer.js';
export { readTrace, type Trace } from './reader.js';
export { summarizeTrace, type TraceSummary } from './inspect.js';
export { TraceFormatError, TRACE_VERSION } from './format.js';
export type { TraceHeader, TraceTrailer, TraceEvent, Chunk } from './trace-data.js';
export { runGuest, prepareGuest, finishGuestRun, type GuestRun, type GuestRunSpec, type ModeOptions } from './run-guest.js';
