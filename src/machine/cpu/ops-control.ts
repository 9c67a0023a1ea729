// Opcode handlers: control transfer (Jcc, JMP, CALL, RET, RETF, LOOP, JCXZ, and group 5 FF).
import { dec, inc } from './alu.js';
import { testCondition } from './conditions.js';
import type { Cpu } from './cpu.js';
import { CS, ECX, SS, Vec } from './constants.js';
import { farCall, farJump, farReturn } from './far-transfer.js';
import { defineOp } from './op-table.js';

/** LOCK on an instruction that is not a locked read-modify-write of memory: #UD (P6). */
function lockUD(cpu: Cpu): never {
  cpu.raise(Vec.UD);
}

/**
 * Validates a near branch target and returns it truncated to the operand size. The CS limit
 * is checked here, not at the next fetch, so the #GP(0) reports the branch instruction
 * (SDM: JMP/CALL/RET/Jcc "#GP(0) if the target offset is beyond the code segment limit").
 */
function nearTarget(cpu: Cpu, target: number): number {
  const t = cpu.opsize32 ? target >>> 0 : target & 0xffff;
  if (t > cpu.segHi[CS]!) cpu.raise(Vec.GP, 0);
  return t;
}

/** Takes a near branch: checks the target, moves EIP and charges the taken-branch cost. */
function branch(cpu: Cpu, target: number): void {
  cpu.eip = nearTarget(cpu, target);
  cpu.cycles += cpu.cost.branchTaken;
}

// ---- Jcc ----
for (let cc = 0; cc < 16; cc++) {
  defineOp(0x70 + cc, 'Jcc rel8', (cpu) => {
    if (cpu.lock) lockUD(cpu);
    const rel = cpu.fetchS8();
    if (testCondition(cpu, cc)) branch(cpu, cpu.eip + rel);
  });
  defineOp(0x180 + cc, 'Jcc rel', (cpu) => {
    if (cpu.lock) lockUD(cpu);
    const rel = cpu.fetch16();
    if (testCondition(cpu, cc)) branch(cpu, cpu.eip + rel);
  }, (cpu) => {
    if (cpu.lock) lockUD(cpu);
    const rel = cpu.fetch32();
    if (testCondition(cpu, cc)) branch(cpu, cpu.eip + rel);
  });
}

// ---- JMP / CALL relative ----
defineOp(0xeb, 'JMP rel8', (cpu) => { if (cpu.lock) lockUD(cpu); const rel = cpu.fetchS8(); branch(cpu, cpu.eip + rel); });
defineOp(0xe9, 'JMP rel',
  (cpu) => { if (cpu.lock) lockUD(cpu); const rel = cpu.fetch16(); branch(cpu, cpu.eip + rel); },
  (cpu) => { if (cpu.lock) lockUD(cpu); const rel = cpu.fetch32(); branch(cpu, cpu.eip + rel); });

/** CALL rel: the target is checked before the return address is pushed. */
defineOp(0xe8, 'CALL rel', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const rel = cpu.fetch16();
  const t = nearTarget(cpu, cpu.eip + rel);
  cpu.push16(cpu.eip);
  cpu.eip = t;
  cpu.cycles += cpu.cost.branchTaken;
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const rel = cpu.fetch32();
  const t = nearTarget(cpu, cpu.eip + rel);
  cpu.push32(cpu.eip);
  cpu.eip = t;
  cpu.cycles += cpu.cost.branchTaken;
});

// ---- RET near [imm16]: the return address is read, checked, then SP moves ----
function retNear(cpu: Cpu, imm: number): void {
  const size = cpu.opsize32 ? 4 : 2;
  const sp = cpu.sp;
  const t = nearTarget(cpu, cpu.opsize32 ? cpu.readMem32(SS, sp) : cpu.readMem16(SS, sp));
  cpu.sp = cpu.ss32 ? (sp + size + imm) >>> 0 : (sp + size + imm) & 0xffff;
  cpu.eip = t;
  cpu.cycles += cpu.cost.branchTaken;
}
defineOp(0xc2, 'RET imm16', (cpu) => { if (cpu.lock) lockUD(cpu); const imm = cpu.fetch16(); retNear(cpu, imm); });
defineOp(0xc3, 'RET', (cpu) => { if (cpu.lock) lockUD(cpu); retNear(cpu, 0); });

// ---- RETF [imm16] ----
defineOp(0xca, 'RETF imm16', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const imm = cpu.fetch16();
  farReturn(cpu, imm);
  cpu.cycles += cpu.cost.branchTaken;
});
defineOp(0xcb, 'RETF', (cpu) => { if (cpu.lock) lockUD(cpu); farReturn(cpu, 0); cpu.cycles += cpu.cost.branchTaken; });

// ---- far pointers in the instruction: offset (operand size) then selector ----
defineOp(0x9a, 'CALL FAR ptr', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const off = cpu.opsize32 ? cpu.fetch32() : cpu.fetch16();
  const sel = cpu.fetch16();
  farCall(cpu, sel, off);
  cpu.cycles += cpu.cost.branchTaken;
});
defineOp(0xea, 'JMP FAR ptr', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const off = cpu.opsize32 ? cpu.fetch32() : cpu.fetch16();
  const sel = cpu.fetch16();
  farJump(cpu, sel, off);
  cpu.cycles += cpu.cost.branchTaken;
});

// ---- LOOPcc / JCXZ: the counter is CX or ECX by ADDRESS size ----
/**
 * LOOP/LOOPE/LOOPNE. `kind`: 0 = LOOPNE (ZF=0), 1 = LOOPE (ZF=1), 2 = LOOP. The counter is
 * written only after the target check, so a #GP leaves it unchanged.
 */
function loop(cpu: Cpu, kind: number): void {
  const rel = cpu.fetchS8();
  const count = cpu.addrsize32 ? (cpu.r32[ECX]! - 1) | 0 : (cpu.r16[ECX << 1]! - 1) & 0xffff;
  let taken = count !== 0;
  if (taken && kind !== 2) taken = ((cpu.flags & 0x40) !== 0) === (kind === 1);
  if (taken) {
    const t = nearTarget(cpu, cpu.eip + rel);
    cpu.eip = t;
    cpu.cycles += cpu.cost.branchTaken;
  }
  if (cpu.addrsize32) cpu.r32[ECX] = count; else cpu.r16[ECX << 1] = count;
}
defineOp(0xe0, 'LOOPNE', (cpu) => { if (cpu.lock) lockUD(cpu); loop(cpu, 0); });
defineOp(0xe1, 'LOOPE', (cpu) => { if (cpu.lock) lockUD(cpu); loop(cpu, 1); });
defineOp(0xe2, 'LOOP', (cpu) => { if (cpu.lock) lockUD(cpu); loop(cpu, 2); });
defineOp(0xe3, 'JCXZ', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const rel = cpu.fetchS8();
  const zero = cpu.addrsize32 ? cpu.r32[ECX] === 0 : cpu.r16[ECX << 1] === 0;
  if (zero) branch(cpu, cpu.eip + rel);
});

// ======================================================================================
// Group 5 (FF): INC, DEC, CALL, CALL FAR, JMP, JMP FAR, PUSH
// ======================================================================================

/** Reads an m16:16 / m16:32 far pointer operand and hands it to `farCall`/`farJump`. */
function farIndirect(cpu: Cpu, call: boolean): void {
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  let off: number, sel: number;
  if (cpu.opsize32) {
    off = cpu.readMem32(cpu.eaSeg, cpu.eaOffset);
    sel = cpu.readMem16(cpu.eaSeg, cpu.eaOffset + 4);
  } else {
    off = cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
    sel = cpu.readMem16(cpu.eaSeg, cpu.eaOffset + 2);
  }
  if (call) farCall(cpu, sel, off); else farJump(cpu, sel, off);
  cpu.cycles += cpu.cost.branchTaken;
}

defineOp(0xff, 'group 5', (cpu) => {
  cpu.decodeModrm();
  cpu.chargeGroup(0xff);
  if (cpu.lock && (cpu.modrmMod === 3 || cpu.modrmReg > 1)) lockUD(cpu);
  switch (cpu.modrmReg) {
    case 0: { const v = cpu.readRMW16(); cpu.writeRMW16(inc(cpu, v, 16)); break; }
    case 1: { const v = cpu.readRMW16(); cpu.writeRMW16(dec(cpu, v, 16)); break; }
    case 2: {
      const t = nearTarget(cpu, cpu.readRM16());
      cpu.push16(cpu.eip);
      cpu.eip = t;
      cpu.cycles += cpu.cost.branchTaken;
      break;
    }
    case 3: farIndirect(cpu, true); break;
    case 4: branch(cpu, cpu.readRM16()); break;
    case 5: farIndirect(cpu, false); break;
    case 6: cpu.push16(cpu.readRM16()); break;
    default: cpu.raise(Vec.UD);
  }
}, (cpu) => {
  cpu.decodeModrm();
  cpu.chargeGroup(0xff);
  if (cpu.lock && (cpu.modrmMod === 3 || cpu.modrmReg > 1)) lockUD(cpu);
  switch (cpu.modrmReg) {
    case 0: { const v = cpu.readRMW32(); cpu.writeRMW32(inc(cpu, v, 32)); break; }
    case 1: { const v = cpu.readRMW32(); cpu.writeRMW32(dec(cpu, v, 32)); break; }
    case 2: {
      const t = nearTarget(cpu, cpu.readRM32());
      cpu.push32(cpu.eip);
      cpu.eip = t;
      cpu.cycles += cpu.cost.branchTaken;
      break;
    }
    case 3: farIndirect(cpu, true); break;
    case 4: branch(cpu, cpu.readRM32()); break;
    case 5: farIndirect(cpu, false); break;
    case 6: cpu.push32(cpu.readRM32()); break;
    default: cpu.raise(Vec.UD);
  }
});
