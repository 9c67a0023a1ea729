/**
 * Progress of an experiment on stderr: a cli-progress bar with an ETA on a terminal, plain
 * lines (one per ~10% of the runs, and each failure) when stderr is not a terminal.
 */
import cliProgress from 'cli-progress';

/** What the runner reports to. */
export interface Progress {
  /** A run finished (`failed` with its one-line message). */
  done(label: string, failed: string | null): void;
  stop(): void;
}

const fmtSeconds = (s: number): string => (s >= 90 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(s < 10 ? 1 : 0)}s`);

/** A progress reporter for `total` runs writing to `stream` (a TTY gets a bar). */
export function createProgress(total: number, stream: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean } = process.stderr, now: () => number = () => performance.now()): Progress {
  const t0 = now();
  let count = 0, failed = 0;
  if ((stream as { isTTY?: boolean }).isTTY) {
    // A MultiBar with one bar: it can print failures above the bar (log).
    const multi = new cliProgress.MultiBar({
      stream: stream as NodeJS.WriteStream,
      format: 'virtlab: {bar} {value}/{total} runs | {failed} failed | {duration_formatted} elapsed | ETA {eta_formatted}',
      hideCursor: true, etaBuffer: 20, fps: 5,
    }, cliProgress.Presets.shades_classic);
    const bar = multi.create(total, 0, { failed: 0 });
    return {
      done(label, error) {
        if (error !== null) { failed++; multi.log(`virtlab: failed: ${label}: ${error}\n`); }
        bar.increment(1, { failed });
      },
      stop() { multi.stop(); },
    };
  }
  let nextReport = 0;
  return {
    done(label, error) {
      count++;
      if (error !== null) { failed++; stream.write(`virtlab: failed: ${label}: ${error}\n`); }
      if (count >= nextReport || count === total) {
        const el = (now() - t0) / 1000;
        const eta = count ? (el / count) * (total - count) : 0;
        stream.write(`virtlab: ${count}/${total} runs (${Math.floor((100 * count) / total)}%), ${failed} failed, ${fmtSeconds(el)} elapsed, ETA ${fmtSeconds(eta)}\n`);
        nextReport = count + Math.max(1, Math.ceil(total / 10));
      }
    },
    stop() { /* plain lines need no clean-up */ },
  };
}
