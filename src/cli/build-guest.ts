/**
 * `virtlab build-guest <module.ts|NAME> -o FILE [--elf FILE] [--param k=v ...]`: builds a
 * guest image from a TypeScript/JavaScript module or a built-in guest and writes it
 * (atomically) as a virtlab image file and/or a Multiboot ELF.
 */
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BUILTIN_GUESTS } from '../guest/builtin-guests.js';
import { ImageError } from '../guest/elf.js';
import { validateGuestImage, type GuestImage } from '../guest/image.js';
import { toMultibootElf } from '../guest/image-elf.js';
import { writeFileAtomicSync, writeGuestImage } from '../guest/image-format.js';
import { AsmError } from '../x86/assembler.js';
import { UsageError } from './errors.js';

export const BUILD_GUEST_USAGE = `usage: virtlab build-guest <module.ts|NAME> -o FILE [--elf FILE] [--param k=v ...]

Builds a guest image and writes it atomically.

  <module.ts>            a TypeScript or JavaScript module whose default export (or export
                         "build") is a function (params) => GuestImage (or a Promise of one)
  NAME                   a built-in guest: ${Object.keys(BUILTIN_GUESTS).join(', ')}

options:
  -o, --output FILE      write the virtlab guest image (.vlg) to FILE
  --elf FILE             also (or only) write a Multiboot ELF for QEMU / virtlab exec
  --param k=v            a builder parameter (repeatable)
  --list                 list the built-in guests and their parameters
  -h, --help             this help
`;

/** Where the subcommand writes. */
export interface BuildGuestIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

let tsLoaderRegistered = false;

/**
 * Imports a guest module. A .ts file is imported as is first (under vitest or a TypeScript
 * loader that works); if Node cannot, ts-node (transpile-only) is registered and it is retried.
 */
async function importModule(path: string): Promise<Record<string, unknown>> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new UsageError(`${path}: no such file (and no built-in guest of that name: ${Object.keys(BUILTIN_GUESTS).join(', ')})`);
  const url = pathToFileURL(abs).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ERR_UNKNOWN_FILE_EXTENSION' || tsLoaderRegistered || !['.ts', '.mts', '.cts'].includes(extname(abs))) throw e;
  }
  process.env.TS_NODE_TRANSPILE_ONLY ??= 'true';
  register('ts-node/esm', pathToFileURL('./'));
  tsLoaderRegistered = true;
  // A new URL: Node remembers the failed import of the plain one.
  return (await import(`${url}?ts-node`)) as Record<string, unknown>;
}

function parseParams(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param: expected k=v, got "${p}"`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

function isImage(v: unknown): v is GuestImage {
  return typeof v === 'object' && v !== null && 'segments' in v && 'entry' in v && 'pvopSites' in v;
}

/** Builds the image named by `target` (a built-in name or a module path). */
export async function buildGuest(target: string, params: Record<string, string>): Promise<GuestImage> {
  const builtin = BUILTIN_GUESTS[target];
  if (builtin) {
    for (const k of Object.keys(params)) {
      if (!(k in builtin.params)) {
        const known = Object.keys(builtin.params);
        throw new UsageError(`guest "${target}" has no parameter "${k}" (parameters: ${known.length ? known.join(', ') : 'none'})`);
      }
    }
    const full = Object.fromEntries(Object.entries(builtin.params).map(([k, p]) => [k, params[k] ?? p.default]));
    try {
      return builtin.build(full);
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(`guest "${target}": ${e.message}`);
      throw e;
    }
  }
  if (!/[\\/.]/.test(target)) {
    throw new UsageError(`unknown guest "${target}" (built-in guests: ${Object.keys(BUILTIN_GUESTS).join(', ')}; or give a module path)`);
  }
  const mod = await importModule(target);
  const builder = mod.default ?? mod.build;
  const result: unknown = typeof builder === 'function' ? await (builder as (p: Record<string, string>) => unknown)(params) : builder;
  if (!isImage(result)) {
    throw new UsageError(`${target}: the default export (or "build") must be a function returning a GuestImage, or a GuestImage`);
  }
  validateGuestImage(result, target);
  return result;
}

/**
 * Runs the subcommand; returns the exit status (0, or 2 for bad input: the one-line
 * message is on stderr). Never throws for bad input.
 */
export async function buildGuestCommand(argv: string[], io: BuildGuestIo): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv, allowPositionals: true, strict: true,
        options: {
          output: { type: 'string', short: 'o' }, elf: { type: 'string' }, param: { type: 'string', multiple: true },
          list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
    const { values, positionals } = parsed;
    if (values.help) { io.stdout(BUILD_GUEST_USAGE); return 0; }
    if (values.list) {
      for (const [name, g] of Object.entries(BUILTIN_GUESTS)) {
        io.stdout(`${name}  ${g.description}\n`);
        for (const [k, p] of Object.entries(g.params)) io.stdout(`    --param ${k}=...  ${p.description} (default ${JSON.stringify(p.default)})\n`);
      }
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'build-guest: which guest? (a module path or a built-in name)' : `build-guest: one guest at a time, got ${positionals.length}`);
    if (!values.output && !values.elf) throw new UsageError('build-guest: give -o FILE and/or --elf FILE');
    const image = await buildGuest(positionals[0]!, parseParams(values.param ?? []));
    if (values.output) writeFileAtomicSync(values.output, writeGuestImage(image));
    if (values.elf) writeFileAtomicSync(values.elf, toMultibootElf(image));
    const size = image.segments.reduce((n, s) => n + s.memsz, 0);
    io.stdout(`${image.name}: ${image.segments.length} segments (${size} bytes in memory), ${image.symbols.length} symbols, ${image.pvopSites.length} pv-op sites, entry 0x${image.entry.toString(16)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ImageError || e instanceof AsmError) {
      io.stderr(`virtlab: ${e.message}\n`);
      return 2;
    }
    const code = (e as NodeJS.ErrnoException | null)?.code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      io.stderr(`virtlab: build-guest: ${(e as Error).message}\n`);
      return 2;
    }
    io.stderr(`virtlab: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.VIRTLAB_DEBUG) io.stderr(`${e instanceof Error ? e.stack : ''}\n`);
    return 70;
  }
}
