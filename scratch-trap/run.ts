import { Machine } from '../src/machine/machine.js';
import { loadProfile } from '../src/profiles/index.js';
import { readGuest, readExpected, lineDiff, describeExit } from '../test/e2e/guest-harness.js';
import { TrapMonitor, TRAP_MONITOR_MIB } from '../src/vmm/trap.js';
for (const name of process.argv.slice(2)) {
  const m = new Machine({ memoryMiB: 128, monitorMiB: TRAP_MONITOR_MIB, profile: loadProfile().profile });
  const e9: number[] = [];
  m.io.registerWrite8(0xe9, (_p, v) => { e9.push(v & 0xff); });
  m.loadMultiboot(readGuest(name), name + '.elf');
  const mon = new TrapMonitor();
  mon.attach(m);
  const o = m.run({ maxInstructions: 50_000_000 });
  const exp = readExpected(name);
  const dc = Buffer.from(e9).toString('latin1');
  console.log(name, describeExit(o), 'instr', o.instructions);
  console.log(lineDiff(exp.debugcon, dc, 40).join('\n'));
  console.log('serial', lineDiff(exp.serial, m.console.text()).join('\n'));
  console.log(JSON.stringify(mon.stats()));
  console.log(JSON.stringify(o.accounting.categories));
}
