// Opcode handlers: data transfer and stack (MOV, XCHG, LEA, PUSH/POP and their segment
// register forms, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE, LxS, MOVZX/MOVSX, XLAT, BOUND).
import type { Cpu } from './cpu.js';
import { CS, CR4_VME, DS, EAX, EBP, EBX, ES, ESP, FS, GS, SS, Vec } from './constants.js';
import { IF, IOPL, RF, VIF, VIP, VM, WRITABLE } from './flags.js';
import { defineOp } from './op-table.js';
import { loadSegment } from './segmentation.js';

/** LOCK on an instruction that is not a locked read-modify-write of memory: #UD (P6). */
function lockUD(cpu: Cpu): never {
  cpu.raise(Vec.UD);
}

// ======================================================================================
// Stack helpers (fault-safe: memory first, stack pointer last)
// ======================================================================================

/** Stack pointer after moving it by `delta`, wrapped to the stack size (SS.B). */
function spPlus(cpu: Cpu, delta: number): number {
  return cpu.ss32 ? (cpu.r32[ESP]! + delta) >>> 0 : (cpu.r16[ESP << 1]! + delta) & 0xffff;
}

/**
 * Pops a segment selector (operand size wide) into `seg`. The value is read and the segment
 * loaded before SP moves, so a faulting load leaves SP as it was. The increment uses the stack
 * size in force when the value was read (the old SS for POP SS).
 */
function popSegment(cpu: Cpu, seg: number): void {
  const size = cpu.opsize32 ? 4 : 2;
  // The whole slot must be readable even though only its low 16 bits are used.
  const sel = cpu.opsize32 ? cpu.readMem32(SS, cpu.sp) & 0xffff : cpu.readMem16(SS, cpu.sp);
  const old32 = cpu.ss32;
  loadSegment(cpu, seg, sel);
  if (old32) cpu.r32[ESP] = cpu.r32[ESP]! + size; else cpu.r16[ESP << 1] = cpu.r16[ESP << 1]! + size;
}

/**
 * Pushes a segment selector. With a 32-bit operand size the stack pointer moves by 4 but only
 * the low 16 bits of the slot are written, as P6 and later Intel CPUs do (SDM, PUSH).
 */
function pushSegment(cpu: Cpu, seg: number): void {
  const sel = cpu.segSel[seg]!;
  if (cpu.opsize32) {
    const sp = spPlus(cpu, -4);
    cpu.dataAddr(SS, sp, 4, true); // the slot must be writable as a whole
    cpu.writeMem16(SS, sp, sel);
    cpu.sp = sp;
  } else {
    cpu.push16(sel);
  }
}

function defineSegPushPop(pushOp: number, popOp: number, seg: number, name: string): void {
  defineOp(pushOp, `PUSH ${name}`, (cpu) => { if (cpu.lock) lockUD(cpu); pushSegment(cpu, seg); });
  if (popOp >= 0) {
    defineOp(popOp, `POP ${name}`, (cpu) => {
      if (cpu.lock) lockUD(cpu);
      popSegment(cpu, seg);
      if (seg === SS) cpu.inhibitInterrupts();
    });
  }
}

defineSegPushPop(0x06, 0x07, ES, 'ES');
defineSegPushPop(0x0e, -1, CS, 'CS');
defineSegPushPop(0x16, 0x17, SS, 'SS');
defineSegPushPop(0x1e, 0x1f, DS, 'DS');
defineSegPushPop(0x1a0, 0x1a1, FS, 'FS');
defineSegPushPop(0x1a8, 0x1a9, GS, 'GS');

// ---- PUSH/POP general registers ----
for (let r = 0; r < 8; r++) {
  // PUSH ESP pushes the value before the decrement: the register is read before push moves SP.
  defineOp(0x50 + r, 'PUSH r16', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push16(cpu.r16[r << 1]!); }, (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push32(cpu.r32[r]!); });
  // POP ESP: the popped value replaces the incremented SP.
  defineOp(0x58 + r, 'POP r16', (cpu) => { if (cpu.lock) lockUD(cpu); const v = cpu.pop16(); cpu.r16[r << 1] = v; },
    (cpu) => { if (cpu.lock) lockUD(cpu); const v = cpu.pop32(); cpu.r32[r] = v; });
}

/** PUSHA/PUSHAD: all eight stores happen before SP changes, so a fault leaves SP intact. */
defineOp(0x60, 'PUSHA', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const orig = cpu.r16[ESP << 1]!;
  let sp = cpu.sp;
  for (let r = 0; r < 8; r++) {
    sp = cpu.ss32 ? (sp - 2) >>> 0 : (sp - 2) & 0xffff;
    cpu.writeMem16(SS, sp, r === ESP ? orig : cpu.r16[r << 1]!);
  }
  cpu.sp = sp;
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const orig = cpu.r32[ESP]!;
  let sp = cpu.sp;
  for (let r = 0; r < 8; r++) {
    sp = cpu.ss32 ? (sp - 4) >>> 0 : (sp - 4) & 0xffff;
    cpu.writeMem32(SS, sp, r === ESP ? orig : cpu.r32[r]!);
  }
  cpu.sp = sp;
});

/** POPA/POPAD: reads the whole frame first; the saved SP slot is skipped. */
const popaBuf = new Int32Array(8);
defineOp(0x61, 'POPA', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  let sp = cpu.sp;
  for (let r = 7; r >= 0; r--) {
    popaBuf[r] = cpu.readMem16(SS, sp);
    sp = cpu.ss32 ? (sp + 2) >>> 0 : (sp + 2) & 0xffff;
  }
  for (let r = 0; r < 8; r++) if (r !== ESP) cpu.r16[r << 1] = popaBuf[r]!;
  cpu.sp = sp;
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  let sp = cpu.sp;
  for (let r = 7; r >= 0; r--) {
    popaBuf[r] = cpu.readMem32(SS, sp);
    sp = cpu.ss32 ? (sp + 4) >>> 0 : (sp + 4) & 0xffff;
  }
  for (let r = 0; r < 8; r++) if (r !== ESP) cpu.r32[r] = popaBuf[r]!;
  cpu.sp = sp;
});

/** BOUND: #BR when the signed index lies outside [lower, upper]; the register form is #UD. */
defineOp(0x62, 'BOUND', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  const idx = (cpu.r16[cpu.modrmReg << 1]! << 16) >> 16;
  const lo = (cpu.readMem16(cpu.eaSeg, cpu.eaOffset) << 16) >> 16;
  const hi = (cpu.readMem16(cpu.eaSeg, cpu.eaOffset + 2) << 16) >> 16;
  if (idx < lo || idx > hi) cpu.raise(Vec.BR);
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  const idx = cpu.r32[cpu.modrmReg]!;
  const lo = cpu.readMem32(cpu.eaSeg, cpu.eaOffset);
  const hi = cpu.readMem32(cpu.eaSeg, cpu.eaOffset + 4);
  if (idx < lo || idx > hi) cpu.raise(Vec.BR);
});

// ---- PUSH imm ----
defineOp(0x68, 'PUSH imm', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push16(cpu.fetch16()); }, (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push32(cpu.fetch32()); });
defineOp(0x6a, 'PUSH imm8', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push16(cpu.fetchS8()); }, (cpu) => { if (cpu.lock) lockUD(cpu); cpu.push32(cpu.fetchS8()); });

// ======================================================================================
// MOV, XCHG, LEA
// ======================================================================================

/** XCHG r/m, reg: the memory write happens before the register changes (LOCK is implied). */
defineOp(0x86, 'XCHG r/m8,r8', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockUD(cpu);
  const a = cpu.readRMW8();
  const b = cpu.getReg8(cpu.modrmReg);
  cpu.writeRMW8(b);
  cpu.setReg8(cpu.modrmReg, a);
});
defineOp(0x87, 'XCHG r/m,r', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockUD(cpu);
  const a = cpu.readRMW16();
  const b = cpu.r16[cpu.modrmReg << 1]!;
  cpu.writeRMW16(b);
  cpu.r16[cpu.modrmReg << 1] = a;
}, (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockUD(cpu);
  const a = cpu.readRMW32();
  const b = cpu.r32[cpu.modrmReg]!;
  cpu.writeRMW32(b);
  cpu.r32[cpu.modrmReg] = a;
});

defineOp(0x88, 'MOV r/m8,r8', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.writeRM8(cpu.getReg8(cpu.modrmReg)); });
defineOp(0x89, 'MOV r/m,r',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.writeRM16(cpu.r16[cpu.modrmReg << 1]!); },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.writeRM32(cpu.r32[cpu.modrmReg]!); });
defineOp(0x8a, 'MOV r8,r/m8', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.setReg8(cpu.modrmReg, cpu.readRM8()); });
defineOp(0x8b, 'MOV r,r/m',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r16[cpu.modrmReg << 1] = cpu.readRM16(); },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r32[cpu.modrmReg] = cpu.readRM32(); });

/** MOV r/m, Sreg: to a register with 32-bit operand size the selector is zero-extended; to memory always 16 bits. */
defineOp(0x8c, 'MOV r/m,Sreg', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmReg > 5) cpu.raise(Vec.UD);
  const sel = cpu.segSel[cpu.modrmReg]!;
  if (cpu.modrmMod === 3) {
    if (cpu.opsize32) cpu.r32[cpu.modrmRm] = sel; else cpu.r16[cpu.modrmRm << 1] = sel;
  } else {
    cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, sel);
  }
});

/** LEA: the offset, truncated to the operand size; no memory access; register form #UD. */
defineOp(0x8d, 'LEA', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  cpu.r16[cpu.modrmReg << 1] = cpu.eaOffset;
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  cpu.r32[cpu.modrmReg] = cpu.eaOffset;
});

/** MOV Sreg, r/m: CS and the nonexistent registers 6/7 are #UD; loading SS opens an interrupt shadow. */
defineOp(0x8e, 'MOV Sreg,r/m', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  const seg = cpu.modrmReg;
  if (seg === CS || seg > 5) cpu.raise(Vec.UD);
  const sel = cpu.modrmMod === 3 ? cpu.r16[cpu.modrmRm << 1]! : cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
  loadSegment(cpu, seg, sel);
  if (seg === SS) cpu.inhibitInterrupts();
});

/**
 * POP r/m (/0). The destination's effective address is computed with the stack pointer
 * already incremented (SDM: POP [ESP+n] addresses relative to the new ESP), so SP is moved
 * before the ModR/M decode and put back if the store faults.
 */
defineOp(0x8f, 'POP r/m', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  // #UD (reg != 0) takes precedence over stack faults: look at the ModR/M byte first.
  const m = cpu.fetch8();
  cpu.eip--;
  if ((m & 0x38) !== 0) cpu.raise(Vec.UD);
  const size = cpu.opsize32 ? 4 : 2;
  const oldSp = cpu.r32[ESP]!;
  const v = cpu.opsize32 ? cpu.readMem32(SS, cpu.sp) : cpu.readMem16(SS, cpu.sp);
  cpu.sp = spPlus(cpu, size);
  try {
    cpu.decodeModrm();
    if (cpu.opsize32) cpu.writeRM32(v); else cpu.writeRM16(v);
  } catch (e) {
    cpu.r32[ESP] = oldSp;
    throw e;
  }
});

// ---- XCHG eAX, reg / NOP / PAUSE ----
defineOp(0x90, 'NOP', (cpu) => { if (cpu.lock) lockUD(cpu); /* also PAUSE (F3 90): no architectural effect */ });
for (let r = 1; r < 8; r++) {
  defineOp(0x90 + r, 'XCHG eAX,r', (cpu) => {
    if (cpu.lock) lockUD(cpu);
    const t = cpu.r16[EAX]!; cpu.r16[EAX] = cpu.r16[r << 1]!; cpu.r16[r << 1] = t;
  }, (cpu) => {
    if (cpu.lock) lockUD(cpu);
    const t = cpu.r32[EAX]!; cpu.r32[EAX] = cpu.r32[r]!; cpu.r32[r] = t;
  });
}

// ======================================================================================
// PUSHF / POPF
// ======================================================================================

/** V86 mode with IOPL < 3 (and no VME): PUSHF/POPF trap to the monitor with #GP(0). */
function v86FlagsCheck(cpu: Cpu): void {
  if ((cpu.flags & VM) !== 0 && (cpu.flags & IOPL) !== IOPL) {
    if ((cpu.cr4 & CR4_VME) !== 0 && !cpu.opsize32) cpu.unsupported('PUSHF/POPF under CR4.VME (virtual interrupt flag)');
    cpu.raise(Vec.GP, 0);
  }
}

/** PUSHF: the 32-bit image has VM and RF cleared (SDM, PUSHF). */
defineOp(0x9c, 'PUSHF', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  v86FlagsCheck(cpu);
  cpu.push16(cpu.flags & 0xffff);
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  v86FlagsCheck(cpu);
  cpu.push32(cpu.flags & 0x00fcffff);
});

/**
 * POPF per the SDM: VM, VIF, VIP never change; the 32-bit form clears RF; IOPL changes only
 * at CPL 0 (not in V86); IF only when CPL <= IOPL. The 16-bit form keeps the upper half.
 */
function popf(cpu: Cpu, value: number): void {
  let mask = WRITABLE & ~(VM | VIF | VIP);
  if (cpu.v86) {
    mask &= ~IOPL; // IOPL is 3 here (checked before the pop); IF may change
  } else if (cpu.protectedMode && cpu.cpl > 0) {
    mask &= ~IOPL;
    if (cpu.cpl > ((cpu.flags & IOPL) >>> 12)) mask &= ~IF;
  }
  if (cpu.opsize32) {
    value &= ~RF; // RF is cleared by the 32-bit form
  } else {
    mask &= 0xffff;
  }
  cpu.setFlags(value, mask);
}
defineOp(0x9d, 'POPF', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  v86FlagsCheck(cpu);
  const v = cpu.pop16();
  popf(cpu, v);
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  v86FlagsCheck(cpu);
  const v = cpu.pop32();
  popf(cpu, v);
});

// ---- MOV moffs: the offset is address-size wide; the segment is DS or the override ----
function moffs(cpu: Cpu): number { return cpu.addrsize32 ? cpu.fetch32() >>> 0 : cpu.fetch16(); }
defineOp(0xa0, 'MOV AL,moffs', (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.r8[0] = cpu.readMem8(cpu.dataSeg, o); });
defineOp(0xa1, 'MOV eAX,moffs',
  (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.r16[EAX] = cpu.readMem16(cpu.dataSeg, o); },
  (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.r32[EAX] = cpu.readMem32(cpu.dataSeg, o); });
defineOp(0xa2, 'MOV moffs,AL', (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.writeMem8(cpu.dataSeg, o, cpu.r8[0]!); });
defineOp(0xa3, 'MOV moffs,eAX',
  (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.writeMem16(cpu.dataSeg, o, cpu.r16[EAX]!); },
  (cpu) => { if (cpu.lock) lockUD(cpu); const o = moffs(cpu); cpu.writeMem32(cpu.dataSeg, o, cpu.r32[EAX]!); });

// ---- MOV reg, imm ----
for (let r = 0; r < 8; r++) {
  defineOp(0xb0 + r, 'MOV r8,imm8', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.setReg8(r, cpu.fetch8()); });
  defineOp(0xb8 + r, 'MOV r,imm', (cpu) => { if (cpu.lock) lockUD(cpu); cpu.r16[r << 1] = cpu.fetch16(); }, (cpu) => { if (cpu.lock) lockUD(cpu); cpu.r32[r] = cpu.fetch32(); });
}

// ---- LES/LDS/LSS/LFS/LGS: offset then selector; the segment is loaded before the register ----
function loadFarPointer(cpu: Cpu, seg: number): void {
  cpu.decodeModrm();
  if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
  if (cpu.opsize32) {
    const off = cpu.readMem32(cpu.eaSeg, cpu.eaOffset);
    const sel = cpu.readMem16(cpu.eaSeg, cpu.eaOffset + 4);
    loadSegment(cpu, seg, sel);
    cpu.r32[cpu.modrmReg] = off;
  } else {
    const off = cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
    const sel = cpu.readMem16(cpu.eaSeg, cpu.eaOffset + 2);
    loadSegment(cpu, seg, sel);
    cpu.r16[cpu.modrmReg << 1] = off;
  }
}
defineOp(0xc4, 'LES', (cpu) => { if (cpu.lock) lockUD(cpu); loadFarPointer(cpu, ES); });
defineOp(0xc5, 'LDS', (cpu) => { if (cpu.lock) lockUD(cpu); loadFarPointer(cpu, DS); });
defineOp(0x1b2, 'LSS', (cpu) => { if (cpu.lock) lockUD(cpu); loadFarPointer(cpu, SS); });
defineOp(0x1b4, 'LFS', (cpu) => { if (cpu.lock) lockUD(cpu); loadFarPointer(cpu, FS); });
defineOp(0x1b5, 'LGS', (cpu) => { if (cpu.lock) lockUD(cpu); loadFarPointer(cpu, GS); });

// ---- MOV r/m, imm (/0; the immediate follows the displacement) ----
defineOp(0xc6, 'MOV r/m8,imm8', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmReg !== 0) cpu.raise(Vec.UD);
  cpu.writeRM8(cpu.fetch8());
});
defineOp(0xc7, 'MOV r/m,imm', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmReg !== 0) cpu.raise(Vec.UD);
  cpu.writeRM16(cpu.fetch16());
}, (cpu) => {
  if (cpu.lock) lockUD(cpu);
  cpu.decodeModrm();
  if (cpu.modrmReg !== 0) cpu.raise(Vec.UD);
  cpu.writeRM32(cpu.fetch32());
});

// ======================================================================================
// ENTER / LEAVE
// ======================================================================================

/**
 * ENTER imm16, imm8 (SDM algorithm): the frame pointer and the copied display are stored
 * first; EBP/BP (by operand size) and ESP/SP (by stack size) change only at the end, after
 * the final stack pointer has been checked against the SS limit (#SS(0)).
 */
defineOp(0xc8, 'ENTER', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const alloc = cpu.fetch16();
  const level = cpu.fetch8() & 31;
  const os32 = cpu.opsize32;
  const size = os32 ? 4 : 2;
  const ss32 = cpu.ss32;
  const mask = ss32 ? -1 : 0xffff;
  let sp = cpu.sp;
  sp = ((sp - size) & mask) >>> 0;
  if (os32) cpu.writeMem32(SS, sp, cpu.r32[EBP]!); else cpu.writeMem16(SS, sp, cpu.r16[EBP << 1]!);
  const frameTemp = sp;
  if (level > 0) {
    let bp = ss32 ? cpu.r32[EBP]! >>> 0 : cpu.r16[EBP << 1]!;
    for (let i = 1; i < level; i++) {
      bp = ((bp - size) & mask) >>> 0;
      sp = ((sp - size) & mask) >>> 0;
      if (os32) cpu.writeMem32(SS, sp, cpu.readMem32(SS, bp));
      else cpu.writeMem16(SS, sp, cpu.readMem16(SS, bp));
    }
    sp = ((sp - size) & mask) >>> 0;
    if (os32) cpu.writeMem32(SS, sp, frameTemp); else cpu.writeMem16(SS, sp, frameTemp);
  }
  const newSp = ((sp - alloc) & mask) >>> 0;
  if (newSp < cpu.segLo[SS]! || newSp > cpu.segHi[SS]!) cpu.raise(Vec.SS, 0);
  if (os32) cpu.r32[EBP] = frameTemp; else cpu.r16[EBP << 1] = frameTemp;
  cpu.sp = newSp;
});

/** LEAVE: SP ← BP (stack size), then pop BP (operand size); the read comes first. */
defineOp(0xc9, 'LEAVE', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const bp = cpu.ss32 ? cpu.r32[EBP]! >>> 0 : cpu.r16[EBP << 1]!;
  if (cpu.opsize32) {
    const v = cpu.readMem32(SS, bp);
    cpu.sp = cpu.ss32 ? (bp + 4) >>> 0 : (bp + 4) & 0xffff;
    cpu.r32[EBP] = v;
  } else {
    const v = cpu.readMem16(SS, bp);
    cpu.sp = cpu.ss32 ? (bp + 2) >>> 0 : (bp + 2) & 0xffff;
    cpu.r16[EBP << 1] = v;
  }
});

/** XLAT: AL ← [seg:(E)BX + AL], the sum wrapped to the address size. */
defineOp(0xd7, 'XLAT', (cpu) => {
  if (cpu.lock) lockUD(cpu);
  const off = cpu.addrsize32 ? (cpu.r32[EBX]! + cpu.r8[0]!) >>> 0 : (cpu.r16[EBX << 1]! + cpu.r8[0]!) & 0xffff;
  cpu.r8[0] = cpu.readMem8(cpu.dataSeg, off);
});

// ---- MOVZX / MOVSX ----
defineOp(0x1b6, 'MOVZX r,r/m8',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r16[cpu.modrmReg << 1] = cpu.readRM8(); },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r32[cpu.modrmReg] = cpu.readRM8(); });
defineOp(0x1b7, 'MOVZX r,r/m16',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r16[cpu.modrmReg << 1] = cpu.readRM16(); },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r32[cpu.modrmReg] = cpu.readRM16(); });
defineOp(0x1be, 'MOVSX r,r/m8',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r16[cpu.modrmReg << 1] = (cpu.readRM8() << 24) >> 24; },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r32[cpu.modrmReg] = (cpu.readRM8() << 24) >> 24; });
defineOp(0x1bf, 'MOVSX r,r/m16',
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r16[cpu.modrmReg << 1] = cpu.readRM16(); },
  (cpu) => { if (cpu.lock) lockUD(cpu); cpu.decodeModrm(); cpu.r32[cpu.modrmReg] = (cpu.readRM16() << 16) >> 16; });
