import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCrAccess, decodeIo, ExitReason } from '../../../src/vmm/hw/exit-reasons.js';
import {
  cltsExit, eptEnabled, exceptionExit, externalInterruptExit, guestCrRead, instructionExit, interruptWindowExit,
  ioExit, ioExits, kvmDefaultVmcs, lmswExit, movFromCrExit, movToCrExit, msrExit, pinFromWord, pinWord,
  proc2FromWord, proc2Word, procFromWord, procWord, setIoIntercept, setMsrIntercept, tripleFaultExit,
  type Vmcs, vpidEnabled,
} from '../../../src/vmm/hw/vmcs.js';

const shadowVmcs = (): Vmcs => kvmDefaultVmcs({ ept: false, vpid: 0 });
const eptVmcs = (): Vmcs => kvmDefaultVmcs({ ept: true, vpid: 1, eptp: 0x0010_001e });

function withBitmaps(): Vmcs {
  const v = shadowVmcs();
  v.proc.useIoBitmaps = true;
  v.proc.unconditionalIoExiting = false;
  return v;
}

describe('control words use the SDM bit positions', () => {
  it('KVM defaults encode to the expected words', () => {
    const s = shadowVmcs(), e = eptVmcs();
    // Pin: bit 0 external-interrupt exiting, bit 3 NMI exiting, bit 5 virtual NMIs.
    expect(pinWord(s.pin)).toBe(0x29);
    // Primary, shadow: TSC offsetting 3, HLT 7, INVLPG 9, MWAIT 10, RDPMC 11, CR3 load 15 / store 16,
    // MOV DR 23, unconditional I/O 24, MSR bitmaps 28, MONITOR 29, secondary 31.
    const shadowProc = (1 << 3) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16)
      | (1 << 23) | (1 << 24) | (1 << 28) | (1 << 29) | (1 << 31);
    expect(procWord(s.proc)).toBe(shadowProc >>> 0);
    // EPT drops INVLPG and CR3 load/store exiting.
    expect(procWord(e.proc)).toBe((shadowProc & ~((1 << 9) | (1 << 15) | (1 << 16))) >>> 0);
    // Secondary: EPT 1, VPID 5, WBINVD 6, unrestricted guest 7.
    expect(proc2Word(e.proc2)).toBe(0xe2);
    expect(proc2Word(s.proc2)).toBe(0x40);
    expect(eptEnabled(e)).toBe(true);
    expect(vpidEnabled(e)).toBe(true);
    expect(eptEnabled(s)).toBe(false);
    expect(vpidEnabled(s)).toBe(false);
  });

  it('words round-trip through the named controls (property)', () => {
    const pinMask = 0x69, procMask = 0xfbc19e8c, proc2Mask = 0xe6;
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (w) => {
      expect(pinWord(pinFromWord(w))).toBe((w & pinMask) >>> 0);
      expect(procWord(procFromWord(w))).toBe((w & procMask) >>> 0);
      expect(proc2Word(proc2FromWord(w))).toBe((w & proc2Mask) >>> 0);
    }));
  });
});

describe('I/O', () => {
  it('KVM default (unconditional I/O exiting) exits every access, with the qualification', () => {
    const x = ioExit(shadowVmcs(), { port: 0x3f8, size: 1, in: false, string: false, rep: false, immediate: false });
    expect(x?.reason).toBe(ExitReason.IoInstruction);
    expect(decodeIo(x!.qualification)).toEqual({ port: 0x3f8, size: 1, in: false, string: false, rep: false, immediate: false });
  });

  it('no I/O exiting at all: nothing exits', () => {
    const v = shadowVmcs();
    v.proc.unconditionalIoExiting = false;
    expect(ioExit(v, { port: 0x60, size: 1, in: true, string: false, rep: false, immediate: true })).toBeNull();
  });

  it('bitmaps override unconditional exiting; ports in bitmap B', () => {
    const v = withBitmaps();
    v.proc.unconditionalIoExiting = true; // ignored when bitmaps are used
    expect(ioExits(v, 0x80, 1)).toBe(false);
    setIoIntercept(v, 0x80, true);
    expect(ioExits(v, 0x80, 1)).toBe(true);
    setIoIntercept(v, 0xcf8, true);
    expect(ioExits(v, 0xcf8, 4)).toBe(true);
    expect(ioExits(v, 0xcf5, 4)).toBe(true); // 0xcf5..0xcf8: last byte intercepted
    expect(ioExits(v, 0xcf4, 4)).toBe(false);
    setIoIntercept(v, 0x8000, true);
    expect(v.ioBitmapB[0]).toBe(1);
    expect(ioExits(v, 0x7fff, 2)).toBe(true); // spans both bitmaps
    expect(ioExits(v, 0x7ffe, 2)).toBe(false);
  });

  it('an access wrapping past 0xFFFF exits even with clear bitmaps', () => {
    const v = withBitmaps();
    expect(ioExits(v, 0xffff, 1)).toBe(false);
    expect(ioExits(v, 0xffff, 2)).toBe(true);
    expect(ioExits(v, 0xfffd, 4)).toBe(true);
    expect(ioExits(v, 0xfffc, 4)).toBe(false);
  });

  it('property: with bitmaps, exits iff a byte bit is set or the access wraps', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }),
      fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(1, 2, 4), (set, port, size) => {
        const v = withBitmaps();
        const s = new Set(set);
        for (const p of set) setIoIntercept(v, p, true);
        let expected = port + size - 1 > 0xffff;
        for (let i = 0; i < size; i++) if (s.has(port + i)) expected = true;
        expect(ioExits(v, port, size)).toBe(expected);
      }));
  });
});

describe('MSRs', () => {
  it('KVM default intercepts everything but the SYSENTER MSRs', () => {
    const v = shadowVmcs();
    for (const m of [0x174, 0x175, 0x176]) {
      expect(msrExit(v, m, false)).toBeNull();
      expect(msrExit(v, m, true)).toBeNull();
    }
    expect(msrExit(v, 0x10, false)?.reason).toBe(ExitReason.Rdmsr);
    expect(msrExit(v, 0x10, true)?.reason).toBe(ExitReason.Wrmsr);
  });

  it('high range, out-of-range MSRs, and no bitmaps', () => {
    const v = shadowVmcs();
    v.msrBitmap.fill(0);
    expect(msrExit(v, 0xc0000080, false)).toBeNull();
    setMsrIntercept(v.msrBitmap, 0xc0000080, true, true);
    expect(msrExit(v, 0xc0000080, true)?.reason).toBe(ExitReason.Wrmsr);
    expect(msrExit(v, 0xc0000080, false)).toBeNull();
    // Write-high bitmap is at byte 3072: MSR 0xC0000080 → bit 0x80 → byte 3072 + 16, bit 0.
    expect(v.msrBitmap[3072 + 16]).toBe(1);
    expect(msrExit(v, 0x2000, false)?.reason).toBe(ExitReason.Rdmsr); // outside both ranges
    expect(msrExit(v, 0x40000000, true)?.reason).toBe(ExitReason.Wrmsr);
    expect(() => setMsrIntercept(v.msrBitmap, 0x2000, false, true)).toThrow(RangeError);
    v.proc.useMsrBitmaps = false;
    expect(msrExit(v, 0x174, false)?.reason).toBe(ExitReason.Rdmsr);
  });

  it('property: with a random bitmap, exits iff the bit of the right quarter is set', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.boolean(), fc.boolean(),
      fc.integer({ min: 0, max: 0x1fff }), fc.boolean(), (bm, high, write, low, useHigh) => {
        const v = shadowVmcs();
        v.msrBitmap = bm;
        const msr = (useHigh && high ? 0xc0000000 + low : low) >>> 0;
        const off = (write ? 2048 : 0) + (msr >= 0xc0000000 ? 1024 : 0);
        const bit = ((bm[off + (low >>> 3)]! >>> (low & 7)) & 1) === 1;
        expect(msrExit(v, msr, write) !== null).toBe(bit);
      }));
  });
});

describe('control registers', () => {
  it('MOV to CR0: exits iff a host-owned bit differs from the read shadow', () => {
    const v = shadowVmcs();
    v.cr0Shadow = 0x80000011; // PG | ET | PE as the guest last wrote it
    expect(movToCrExit(v, 0, 0x80000011, 0)).toBeNull();
    expect(movToCrExit(v, 0, 0x80000019, 0)).toBeNull(); // TS is guest-owned
    const x = movToCrExit(v, 0, 0x80000031, 1); // NE changed (host-owned)
    expect(x?.reason).toBe(ExitReason.CrAccess);
    expect(decodeCrAccess(x!.qualification)).toMatchObject({ cr: 0, type: 0, gpr: 1 });
  });

  it('property: CR0/CR4 writes exit iff (value ^ shadow) & mask != 0', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0 as const, 4 as const), (mask, shadow, value, cr) => {
        const v = shadowVmcs();
        if (cr === 0) { v.cr0Mask = mask; v.cr0Shadow = shadow; } else { v.cr4Mask = mask; v.cr4Shadow = shadow; }
        let owned = false;
        for (let b = 0; b < 32; b++) {
          if (((mask >>> b) & 1) && (((value >>> b) & 1) !== ((shadow >>> b) & 1))) owned = true;
        }
        expect(movToCrExit(v, cr, value, 0) !== null).toBe(owned);
      }));
  });

  it('CR3 loads: exiting only in shadow mode, except CR3-target values; stores likewise', () => {
    const s = shadowVmcs(), e = eptVmcs();
    expect(movToCrExit(s, 3, 0x1000, 7)?.qualification).toBe(0x703);
    expect(movToCrExit(e, 3, 0x1000, 7)).toBeNull();
    s.cr3Targets = [0x1000, 0x5000];
    expect(movToCrExit(s, 3, 0x1000, 7)).toBeNull();
    expect(movToCrExit(s, 3, 0x2000, 7)).not.toBeNull();
    expect(decodeCrAccess(movFromCrExit(s, 3, 2)!.qualification)).toMatchObject({ cr: 3, type: 1, gpr: 2 });
    expect(movFromCrExit(e, 3, 2)).toBeNull();
    expect(movFromCrExit(s, 0, 2)).toBeNull();
    expect(movFromCrExit(s, 4, 2)).toBeNull();
  });

  it('reads of CR0/CR4 return the shadow for host-owned bits', () => {
    const v = shadowVmcs();
    v.cr0Mask = 0xfffffff7; v.cr0Shadow = 0x00000011;
    expect(guestCrRead(v, 0, 0x8005003b)).toBe(0x00000019); // real TS kept, others from shadow
    v.cr4Mask = 0x10; v.cr4Shadow = 0;
    expect(guestCrRead(v, 4, 0x90)).toBe(0x80);
  });

  it('CLTS exits iff TS is host-owned and set in the shadow', () => {
    const v = shadowVmcs();
    v.cr0Shadow = 8;
    expect(cltsExit(v)).toBeNull(); // KVM lets the guest own TS
    v.cr0Mask |= 8;
    expect(decodeCrAccess(cltsExit(v)!.qualification).type).toBe(2);
    v.cr0Shadow = 0;
    expect(cltsExit(v)).toBeNull();
  });

  it('LMSW: setting PE against a clear shadow exits; it can never exit by clearing PE', () => {
    const v = shadowVmcs();
    v.cr0Mask = 0xf; v.cr0Shadow = 0;
    const x = lmswExit(v, 1, true);
    expect(decodeCrAccess(x!.qualification)).toMatchObject({ type: 3, lmswMemory: true, lmswSource: 1 });
    v.cr0Shadow = 1;
    expect(lmswExit(v, 0, false)).toBeNull(); // LMSW cannot clear PE
    expect(lmswExit(v, 1, false)).toBeNull();
    expect(lmswExit(v, 3, false)).not.toBeNull(); // MP changes
    v.cr0Mask = 0x1; // only PE host-owned
    expect(lmswExit(v, 0xf, false)).toBeNull();
  });
});

describe('exceptions and interrupts', () => {
  it('shadow paging intercepts #PF, EPT does not; #UD is intercepted by both', () => {
    const s = shadowVmcs(), e = eptVmcs();
    const pf = exceptionExit(s, 14, 6, 0xdeadb000);
    expect(pf?.reason).toBe(ExitReason.ExceptionOrNmi);
    expect(pf?.qualification).toBe(0xdeadb000);
    expect(pf?.interruptionInfo).toBe(0x80000b0e);
    expect(pf?.errorCode).toBe(6);
    expect(exceptionExit(e, 14, 6, 0xdeadb000)).toBeNull();
    expect(exceptionExit(e, 6, 0)?.interruptionInfo).toBe(0x80000306);
    expect(exceptionExit(s, 13, 0)).toBeNull(); // #GP is the guest's own
    expect(exceptionExit(s, 3, 0, 0, 'int3')).toBeNull();
    s.exceptionBitmap |= 1 << 3;
    expect(exceptionExit(s, 3, 0, 0, 'int3')?.interruptionInfo).toBe(0x80000603);
  });

  it('property: #PF exits iff bit 14 == ((code & mask) == match); other vectors iff their bit', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 31 }),
      fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 31 }),
      (bitmap, vector, code, mask, match) => {
        const v = shadowVmcs();
        v.exceptionBitmap = bitmap; v.pfecMask = mask; v.pfecMatch = match;
        const bit = ((bitmap >>> vector) & 1) === 1;
        const want = vector === 14 ? bit === ((code & mask) === match) : bit;
        expect(exceptionExit(v, vector, code) !== null).toBe(want);
      }));
  });

  it('external interrupts exit regardless of IF; interrupt window needs IF and no blocking', () => {
    const v = shadowVmcs();
    expect(externalInterruptExit(v, 0x20)?.interruptionInfo).toBe(0x80000020);
    v.pin.externalInterruptExiting = false;
    expect(externalInterruptExit(v, 0x20)).toBeNull();
    expect(interruptWindowExit(v, true, false)).toBeNull();
    v.proc.interruptWindowExiting = true;
    expect(interruptWindowExit(v, true, false)?.reason).toBe(ExitReason.InterruptWindow);
    expect(interruptWindowExit(v, false, false)).toBeNull();
    expect(interruptWindowExit(v, true, true)).toBeNull();
    expect(tripleFaultExit().reason).toBe(2);
  });
});

describe('instructions', () => {
  it('unconditional exits', () => {
    const v = eptVmcs();
    expect(instructionExit(v, 'cpuid')?.reason).toBe(10);
    expect(instructionExit(v, 'invd')?.reason).toBe(13);
    expect(instructionExit(v, 'vmcall')?.reason).toBe(18);
    expect(instructionExit(v, 'task-switch')?.reason).toBe(9);
    expect(instructionExit(v, 'vmx', 0, ExitReason.Vmxon)?.reason).toBe(27);
    expect(() => instructionExit(v, 'vmx', 0, 12)).toThrow(RangeError);
  });

  it('conditional exits follow their control bit', () => {
    const s = shadowVmcs(), e = eptVmcs();
    expect(instructionExit(s, 'hlt')?.reason).toBe(12);
    expect(instructionExit(s, 'invlpg', 0xc0001000)?.qualification).toBe(0xc0001000);
    expect(instructionExit(e, 'invlpg', 0xc0001000)).toBeNull();
    expect(instructionExit(s, 'rdtsc')).toBeNull(); // TSC offsetting instead
    s.proc.rdtscExiting = true;
    expect(instructionExit(s, 'rdtsc')?.reason).toBe(16);
    expect(instructionExit(s, 'wbinvd')?.reason).toBe(54);
    s.proc.activateSecondaryControls = false; // secondary controls then act as 0
    expect(instructionExit(s, 'wbinvd')).toBeNull();
    expect(instructionExit(e, 'gdtr-idtr')).toBeNull();
    e.proc2.descriptorTableExiting = true;
    expect(instructionExit(e, 'gdtr-idtr')?.reason).toBe(46);
    expect(instructionExit(e, 'ldtr-tr')?.reason).toBe(47);
    expect(instructionExit(e, 'mov-dr', 0x13)?.qualification).toBe(0x13);
    e.proc.hltExiting = false;
    expect(instructionExit(e, 'hlt')).toBeNull();
  });
});
