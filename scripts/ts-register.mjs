// Lets `node --import ./scripts/ts-register.mjs file.ts` run TypeScript through ts-node (ESM, transpile-only).
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

process.env.TS_NODE_TRANSPILE_ONLY ??= 'true';
register('ts-node/esm', pathToFileURL('./'));
