/**
 * Traces (docs/trace-format.md): record a guest once (natively, or a paravirtualized guest under pv), replay it under any mode (a pv trace: under pv) with the same
 * inputs at the same logical positions. The library API for the CLI and the experiment runner.
 */
export { recordTrace, CHECKPOINT_INTERVAL, RAM_DIGEST_EVERY, RECORD_MODES, type RecordMode, type RecordSpec, type Recording } from './recorder.js';
export { replayTrace, formatDivergence, checkReplayMode, TraceModeError, type Divergence, type ReplayOptions, type ReplayRun } from './replayer.js';
export { readTrace, type Trace } from './reader.js';
export { summarizeTrace, type TraceSummary } from './inspect.js';
export { TraceFormatError, TRACE_VERSION, TRACE_VERSION_PV } from './format.js';
export type { TraceHeader, TraceTrailer, TraceEvent, Chunk } from './trace-data.js';
export { runGuest, prepareGuest, finishGuestRun, type GuestRun, type GuestRunSpec, type ModeOptions } from './run-guest.js';
