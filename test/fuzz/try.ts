import { generate } from './gen.js';
for (const [s, a, b] of [['176', 0, 6], ['186', 30, 34], ['42', 48, 51]] as const) console.log(s, generate(s).instrBytes.slice(a, b));
