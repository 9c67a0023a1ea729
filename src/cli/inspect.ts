/**
 * `virtlab inspect`: what a trace holds, and whether every checksum is intact.
 */
import { parseArgs } from 'node:util';
import { SECTION_NAMES, TraceFormatError } from '../trace/format.js';
import { summarizeTrace } from '../trace/inspect.js';
import { readTrace } from '../trace/reader.js';
import { STATUS_ERROR } from '../trace/exit-status.js';
import { UsageError } from './errors.js';
import { readTraceFile } from './replay.js';

export const INSPECT_USAGE = `usage: virtlab inspect FILE [--json]

Reads a trace, checks every section's CRC-32, the embedded images' SHA-256 and the index,
and prints the header, the section and chunk table, the count of each event kind, the
instruction count and the bytes per instruction. A damaged trace gives one line naming the
byte offset and what was expected, and exit status 2.

options:
  --json       the same as JSON
  -h, --help   this help
`;

/** `virtlab inspect`: returns the exit status. */
export function inspectCommand(argv: string[], out: { stdout: (s: string) => void; stderr: (s: string) => void }): number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    throw new UsageError(`inspect: ${(e as Error).message}`);
  }
  const { values, positionals } = parsed;
  if (values.help) { out.stdout(INSPECT_USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'inspect: missing FILE (a trace)' : `inspect: expected one trace, got ${positionals.length}`);
  const file = positionals[0]!;
  const bytes = readTraceFile(file);
  let trace;
  try {
    trace = readTrace(bytes, file);
  } catch (e) {
    if (e instanceof TraceFormatError) { out.stderr(`virtlab: ${e.message}\n`); return STATUS_ERROR; }
    throw e;
  }
  const s = summarizeTrace(trace);
  if (values.json) { out.stdout(JSON.stringify(s, null, 2) + '\n'); return 0; }
  const h = trace.header;
  const lines: string[] = [];
  lines.push(`${file}: virtlab.trace/1 (format version ${h.mode === 'pv' ? 2 : 1}), ${s.fileBytes} bytes, recorded by virtlab ${h.recorder.version}`);
  lines.push(h.mode === 'pv' ? 'recorded under: pv (a paravirtualized guest; replays under --mode pv only)' : 'recorded under: native (replays under native, trap, full, hw; not pv)');
  lines.push(`image: ${h.image.path} (${h.image.format}, ${h.image.bytes} bytes, sha256 ${h.image.sha256})${h.workload !== null ? `; workload ${h.workload.name} ${JSON.stringify(h.workload.params)}` : ''}`);
  lines.push(`machine: ${h.machine.memoryMiB} MiB${h.machine.disk !== null ? `, disk ${h.machine.disk.name} (${h.machine.disk.sectors} sectors)` : ''}${h.machine.nic !== null ? `, nic ${h.machine.nic.name}` : ''}; seed ${h.seed ?? '(the workload\'s)'}; recorded with profile ${h.profile.name}`);
  lines.push(`run: ${s.instructions} logical instructions, exit ${JSON.stringify(trace.trailer.exit)}, status ${trace.trailer.exitStatus}, console ${trace.trailer.consoleBytes} bytes`);
  lines.push(`size: ${s.bytesPerInstruction.toPrecision(3)} bytes per instruction (${s.bytesPerMillionInstructions.toFixed(1)} per million), logs ${s.logBytes} bytes stored`);
  lines.push('events: ' + Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join(', '));
  lines.push('sections:');
  lines.push('  offset      kind      stored       raw  crc32       span');
  for (const x of s.sections) {
    lines.push(`  ${String(x.offset).padStart(10)}  ${SECTION_NAMES[x.kind]!.padEnd(8)} ${String(x.storedBytes).padStart(7)} ${String(x.rawBytes).padStart(9)}  ${x.crc32} ok${x.span !== null ? `  ${x.span}` : ''}`);
  }
  lines.push(`checksums: all ${s.sections.length} section CRC-32s, the footer, the image and disk SHA-256s and the index are intact`);
  out.stdout(lines.join('\n') + '\n');
  return 0;
}
