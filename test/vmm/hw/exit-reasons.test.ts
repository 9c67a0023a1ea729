import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  APPLIES_TO_32BIT_GUEST, CrAccessType, decodeCrAccess, decodeEptViolation, decodeIo, encodeCrAccess,
  encodeEptViolation, encodeInterruptionInfo, encodeIo, EXIT_REASON_NAMES, exitCategory, ExitReason,
  exitReasonName, InterruptionType,
} from '../../../src/vmm/hw/exit-reasons.js';

describe('basic exit reasons (SDM Appendix C)', () => {
  it('numbers the reasons the brief and Linux vmx.h name', () => {
    // Independent list, typed from the SDM table / Linux uapi vmx.h, not from the module.
    const expected: Array<[keyof typeof ExitReason, number]> = [
      ['ExceptionOrNmi', 0], ['ExternalInterrupt', 1], ['TripleFault', 2], ['InterruptWindow', 7],
      ['NmiWindow', 8], ['TaskSwitch', 9], ['Cpuid', 10], ['Hlt', 12], ['Invd', 13], ['Invlpg', 14],
      ['Rdpmc', 15], ['Rdtsc', 16], ['Vmcall', 18], ['Vmclear', 19], ['Vmlaunch', 20], ['Vmptrld', 21],
      ['Vmptrst', 22], ['Vmread', 23], ['Vmresume', 24], ['Vmwrite', 25], ['Vmxoff', 26], ['Vmxon', 27],
      ['CrAccess', 28], ['MovDr', 29], ['IoInstruction', 30], ['Rdmsr', 31], ['Wrmsr', 32],
      ['EntryFailInvalidGuestState', 33], ['Mwait', 36], ['Monitor', 39], ['Pause', 40],
      ['EntryFailMachineCheck', 41], ['TprBelowThreshold', 43], ['ApicAccess', 44], ['VirtualizedEoi', 45],
      ['EptViolation', 48], ['EptMisconfiguration', 49], ['Invept', 50], ['PreemptionTimer', 52],
      ['Wbinvd', 54], ['Xsetbv', 55], ['ApicWrite', 56], ['Invpcid', 58],
    ];
    for (const [k, n] of expected) expect(ExitReason[k], k).toBe(n);
  });

  it('leaves 35, 38 and 42 unassigned and names every assigned number', () => {
    for (const n of [35, 38, 42]) {
      expect(EXIT_REASON_NAMES[n]).toBeUndefined();
      expect(() => exitCategory(n)).toThrow(RangeError);
      expect(() => exitReasonName(n)).toThrow(RangeError);
    }
    for (const n of Object.values(ExitReason)) {
      expect(exitReasonName(n)).toBeTruthy();
      expect(exitCategory(n)).toMatch(/^exit:[a-z0-9-]+$/);
    }
    const nums = Object.values(ExitReason);
    expect(new Set(nums).size).toBe(nums.length);
    expect(new Set(nums.map(exitCategory)).size).toBe(nums.length);
  });

  it('names use the SDM wording', () => {
    expect(exitReasonName(28)).toBe('Control-register accesses');
    expect(exitReasonName(30)).toBe('I/O instruction');
    expect(exitReasonName(48)).toBe('EPT violation');
    expect(exitReasonName(49)).toBe('EPT misconfiguration');
    expect(exitCategory(12)).toBe('exit:hlt');
    expect(exitCategory(30)).toBe('exit:io-instruction');
  });

  it('the 32-bit-guest set is a subset of assigned reasons and holds the core ones', () => {
    for (const n of APPLIES_TO_32BIT_GUEST) expect(EXIT_REASON_NAMES[n]).toBeDefined();
    for (const n of [0, 1, 2, 7, 10, 12, 14, 16, 18, 28, 30, 31, 32, 48, 49]) expect(APPLIES_TO_32BIT_GUEST.has(n)).toBe(true);
    expect(APPLIES_TO_32BIT_GUEST.has(ExitReason.Xsaves)).toBe(false);
  });
});

describe('exit qualifications', () => {
  it('CR access: MOV to CR3 from EBX and LMSW from memory (SDM Table 28-3 layouts)', () => {
    // MOV CR3, EBX: CR 3 in bits 3:0, type 0, GPR 3 in bits 11:8.
    expect(encodeCrAccess({ cr: 3, type: CrAccessType.MovToCr, lmswMemory: false, gpr: 3, lmswSource: 0 })).toBe(0x303);
    // MOV EAX, CR3: type 1 → bit 4.
    expect(encodeCrAccess({ cr: 3, type: CrAccessType.MovFromCr, lmswMemory: false, gpr: 0, lmswSource: 0 })).toBe(0x13);
    // CLTS: type 2.
    expect(encodeCrAccess({ cr: 0, type: CrAccessType.Clts, lmswMemory: false, gpr: 0, lmswSource: 0 })).toBe(0x20);
    // LMSW from memory with source 0x000F.
    expect(encodeCrAccess({ cr: 0, type: CrAccessType.Lmsw, lmswMemory: true, gpr: 0, lmswSource: 0xf })).toBe(0x000f0070);
  });

  it('I/O: OUT DX, AL to 0x3F8 and REP INSD from 0x1F0 by immediate', () => {
    expect(encodeIo({ size: 1, in: false, string: false, rep: false, immediate: false, port: 0x3f8 })).toBe(0x03f80000);
    expect(encodeIo({ size: 4, in: true, string: true, rep: true, immediate: true, port: 0x1f0 })).toBe(0x01f0007b);
    expect(encodeIo({ size: 2, in: true, string: false, rep: false, immediate: false, port: 0xffff })).toBe(0xffff0009);
  });

  it('EPT violation: data write to a read-only final translation', () => {
    const q = encodeEptViolation({ read: false, write: true, fetch: false, readable: true, writable: false,
      executable: true, linearValid: true, finalTranslation: true });
    expect(q).toBe(0x2 | 0x8 | 0x20 | 0x80 | 0x100);
    // Bit 8 is only meaningful (and only set) with bit 7.
    expect(encodeEptViolation({ read: true, write: false, fetch: false, readable: false, writable: false,
      executable: false, linearValid: false, finalTranslation: true })).toBe(1);
  });

  it('interruption info: #PF hardware exception with error code; external interrupt 0x20', () => {
    expect(encodeInterruptionInfo(14, InterruptionType.HardwareException, true)).toBe(0x80000b0e);
    expect(encodeInterruptionInfo(0x20, InterruptionType.ExternalInterrupt, false)).toBe(0x80000020);
  });

  it('round-trips (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 3 }), fc.boolean(),
      fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffff }), (cr, type, m, gpr, src) => {
        const q = { cr, type, lmswMemory: m, gpr, lmswSource: src };
        expect(decodeCrAccess(encodeCrAccess(q))).toEqual(q);
      }));
    fc.assert(fc.property(fc.constantFrom(1 as const, 2 as const, 4 as const), fc.boolean(), fc.boolean(), fc.boolean(),
      fc.boolean(), fc.integer({ min: 0, max: 0xffff }), (size, i, s, r, imm, port) => {
        const q = { size, in: i, string: s, rep: r, immediate: imm, port };
        expect(decodeIo(encodeIo(q))).toEqual(q);
      }));
    fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), fc.boolean(), (b, lv) => {
      const q = { read: b[0]!, write: b[1]!, fetch: b[2]!, readable: b[3]!, writable: b[4]!, executable: b[5]!,
        linearValid: lv, finalTranslation: lv && b[6]! };
      expect(decodeEptViolation(encodeEptViolation(q))).toEqual(q);
    }));
  });
});
