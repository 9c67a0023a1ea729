import { Cpu, CS, CR0_PG, ECX, EDI, ESI, ESP } from './src/machine/cpu/cpu.js';
import { unitCostTable } from './src/machine/cpu/cost-table.js';
import { PhysicalMemory } from './src/machine/memory.js';
import { PortBus } from './src/machine/port-bus.js';
import { Tlb } from './src/machine/tlb.js';
function mk(paging: boolean) {
  const tlb = new Tlb({ sets: 16, ways: 4 });
  const cpu = new Cpu(new PhysicalMemory(16 << 20), new PortBus(), unitCostTable(), { itlb: tlb, dtlb: tlb });
  const m = cpu.mem;
  cpu.resetFlat32(0x1000);
  if (paging) {
    m.write32(0x10000, 0x11000 | 7); m.write32(0x10004, 0x12000 | 7); m.write32(0x10008, 0x13000 | 7);m.write32(0x1000c, 0x14000 | 7);
    for (let i = 0; i < 4096; i++) m.write32(0x11000 + i * 4, (i << 12) | 7);
    cpu.cr3 = 0x10000; cpu.cr0 |= CR0_PG; cpu.updatePaging(); cpu.flushTlb(false);
  }
  cpu.r32[ESP] = 0x8000;
  return cpu;
}
for (const paging of [false, true]) {
  for (const [name, op] of [['rep movsb', [0xf3, 0xa4]], ['rep movsd', [0xf3, 0xa5]], ['rep stosb', [0xf3, 0xaa]], ['rep stosd', [0xf3, 0xab]], ['rep lodsb', [0xf3, 0xac]], ['repe cmpsb', [0xf3, 0xa6]]] as const) {
    const cpu = mk(paging);
    // loop: mov esi,0x100000; mov edi,0x400000; mov ecx,N; rep op; jmp loop
    const N = 1 << 20;
    const code = [0xbe, 0, 0, 0x10, 0, 0xbf, 0, 0, 0x40, 0, 0xb9, N & 0xff, (N >> 8) & 0xff, (N >> 16) & 0xff, 0, ...op, 0xeb, -(17 + op.length) & 0xff];
    cpu.mem.u8.set(code, 0x1000);
    const t0 = performance.now();
    cpu.run(5 * 20);
    const dt = performance.now() - t0;
    const sz = name.endsWith('d') ? 4 : 1;
    console.log(`${paging ? 'paged' : 'flat '} ${name}: ${(20 * N * sz / (dt / 1000) / 1e6).toFixed(0)} MB/s, ${(20 * N / (dt / 1000) / 1e6).toFixed(1)} M iter/s`, cpu.stopReason);
  }
}
{
  const cpu = mk(false);
  // loop: push eax; pop ebx; mov ecx,[0x2000]; mov [0x2004],ecx; dec edx? (arith) ; use loop
  const code = [0x50, 0x5b, 0x8b, 0x0d, 0, 0x20, 0, 0, 0x89, 0x0d, 4, 0x20, 0, 0, 0xe8, 0, 0, 0, 0, 0x58, 0xeb, -(21) & 0xff];
  cpu.mem.u8.set(code, 0x1000);
  const n = 20_000_000;
  const t0 = performance.now();
  cpu.run(n);
  const dt = performance.now() - t0;
  console.log(`data/control mix: ${(n / (dt / 1000) / 1e6).toFixed(1)} M instr/s`, cpu.stopReason);
}
