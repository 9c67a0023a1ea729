// Importing this module fills the dispatch table (op-table.ts). One module per kind of
// instruction; each calls defineOp for the opcodes it owns.
import './ops-arith.js';
import './ops-data.js';
import './ops-string.js';
import './ops-control.js';
import './ops-system.js';
import './ops-io.js';
