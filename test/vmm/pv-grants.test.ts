/**
 * Grant tables of the pv model (v1 entries, grant_table_op) against a fake domain: setup,
 * back-end mapping with GTF_reading/GTF_writing, and every refusal (revoked entry, wrong
 * domid, read-only entry mapped for writing, reference out of range, foreign frame, foreign
 * handle) with Xen's GNTST codes, never a mapping of a frame the granter does not own.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { XEN_ERRNO, type DomId, type Mfn } from '../../src/vmm/pv/domain-context.js';
import { DOMID_SELF } from '../../src/vmm/pv/event-channel.js';
import { GNTCOPY, GNTMAP, GNTST, GNTTABOP, GTF, GrantTable, MAX_GRANT_FRAMES } from '../../src/vmm/pv/grant-table.js';
import { OWNED_FRAMES, fakeContext, poke } from './pv-fake-context.js';

const ARG = 0x6000, LIST = 0x7000;
const TABLE_MFN = 20; // the guest's grant-table frame
const COSTS = { grantMap: 1200, grantUnmap: 1500 };
const DOM0 = 0 as DomId;

function setup(frames: number[] = [TABLE_MFN]) {
  const ctx = fakeContext(1);
  const gt = new GrantTable(ctx, COSTS);
  const mem = ctx.mem;
  const call = (cmd: number, fields: readonly [number, 1 | 2 | 4, number][], size = 32): number => {
    mem.u8.fill(0, ARG, ARG + size);
    poke(mem, ARG, fields);
    return gt.hypercall(cmd, ARG, 1);
  };
  const setupTable = (list: number[], dom = DOMID_SELF): number => {
    list.forEach((f, i) => mem.write32(LIST + 4 * i, f));
    expect(call(GNTTABOP.setup_table, [[0, 2, dom], [4, 4, list.length], [12, 4, LIST]])).toBe(0);
    return mem.read16(ARG + 8) << 16 >> 16;
  };
  if (frames.length > 0) expect(setupTable(frames)).toBe(GNTST.okay);
  const entry = (ref: number, flags: number, domid: number, frame: number): void => {
    const at = TABLE_MFN * 4096 + ref * 8;
    mem.write16(at, flags); mem.write16(at + 2, domid); mem.write32(at + 4, frame);
  };
  const flagsOf = (ref: number): number => mem.read16(TABLE_MFN * 4096 + ref * 8);
  const i16 = (off: number): number => (mem.read16(ARG + off) << 16) >> 16;
  return { ctx, gt, mem, call, setupTable, entry, flagsOf, i16 };
}

describe('grant_table_op', () => {
  it('setup_table and query_size', () => {
    const { gt, call, mem, i16 } = setup();
    expect(gt.nrEntries).toBe(512);
    expect(call(GNTTABOP.query_size, [[0, 2, DOMID_SELF]])).toBe(0);
    expect(mem.read32(ARG + 4)).toBe(1);
    expect(mem.read32(ARG + 8)).toBe(MAX_GRANT_FRAMES);
    expect(i16(12)).toBe(GNTST.okay);
    expect(call(GNTTABOP.query_size, [[0, 2, 0]])).toBe(0);
    expect(i16(12)).toBe(GNTST.bad_domain);
  });

  it('refuses table frames the domain does not own, too many, or for another domain', () => {
    const { setupTable, gt, ctx } = setup([]);
    expect(setupTable([OWNED_FRAMES + 3])).toBe(GNTST.bad_page);
    expect(setupTable([1, 2, 3, 4, 5])).toBe(GNTST.general_error);
    expect(setupTable([5, 5])).toBe(GNTST.general_error);
    expect(setupTable([5], 0)).toBe(GNTST.permission_denied);
    expect(gt.nrFrames).toBe(0);
    expect(ctx.rejected.get('grant-table-foreign-frame')).toBe(1);
  });

  it('a back end maps a writable grant: GTF_reading|GTF_writing while mapped, cleared after', () => {
    const { gt, entry, flagsOf, ctx } = setup();
    entry(9, GTF.permit_access, 0, 33);
    const m = gt.mapGrant(9, DOM0, false);
    expect(m.status).toBe(0);
    expect(m.mfn).toBe(33);
    expect(flagsOf(9)).toBe(GTF.permit_access | GTF.reading | GTF.writing);
    const m2 = gt.mapGrant(9, DOM0, true); // a second, read-only mapping
    expect(m2.status).toBe(0);
    expect(gt.unmapGrant(m.handle)).toBe(GNTST.okay);
    expect(flagsOf(9)).toBe(GTF.permit_access | GTF.reading);
    expect(gt.unmapGrant(m2.handle)).toBe(GNTST.okay);
    expect(flagsOf(9)).toBe(GTF.permit_access);
    expect(gt.unmapGrant(m2.handle)).toBe(GNTST.bad_handle);
    expect(ctx.charges.get('hypercall:grant_table_op')).toEqual({ cycles: 2 * 1200 + 2 * 1500, count: 4 });
  });

  it('refusals: out of range, revoked, wrong domid, read-only for writing, foreign frame', () => {
    const { gt, entry, flagsOf, ctx } = setup();
    entry(10, GTF.permit_access | GTF.readonly, 0, 40);
    entry(11, GTF.invalid, 0, 41);
    entry(12, GTF.permit_access, 5, 42);
    entry(13, GTF.permit_access, 0, OWNED_FRAMES + 1);
    entry(14, GTF.accept_transfer, 0, 43);
    expect(gt.mapGrant(512, DOM0, true).status).toBe(GNTST.bad_gntref);
    expect(gt.mapGrant(-1, DOM0, true).status).toBe(GNTST.bad_gntref);
    expect(gt.mapGrant(0xffff_ffff, DOM0, true).status).toBe(GNTST.bad_gntref);
    expect(gt.mapGrant(11, DOM0, true).status).toBe(GNTST.general_error);
    expect(gt.mapGrant(14, DOM0, true).status).toBe(GNTST.general_error);
    expect(gt.mapGrant(12, DOM0, true).status).toBe(GNTST.general_error);
    expect(gt.mapGrant(10, DOM0, false).status).toBe(GNTST.general_error);
    expect(gt.mapGrant(13, DOM0, true).status).toBe(GNTST.bad_page);
    expect(flagsOf(10)).toBe(GTF.permit_access | GTF.readonly); // untouched by the failed map
    const ro = gt.mapGrant(10, DOM0, true);
    expect(ro.status).toBe(0);
    expect(flagsOf(10)).toBe(GTF.permit_access | GTF.readonly | GTF.reading);
    expect(ctx.rejected.get('grant-revoked')).toBe(2);
    expect(ctx.rejected.get('grant-wrong-domid')).toBe(1);
    expect(ctx.rejected.get('grant-write-readonly')).toBe(1);
    expect(ctx.rejected.get('grant-foreign-frame')).toBe(1);
    // Revoked after mapping: the next map fails, the existing one is still released normally.
    entry(10, GTF.invalid, 0, 40);
    expect(gt.mapGrant(10, DOM0, true).status).toBe(GNTST.general_error);
    expect(gt.unmapGrant(ro.handle)).toBe(GNTST.okay);
    expect(gt.liveMappings).toBe(0);
  });

  it('no table yet: every reference is out of range', () => {
    const { gt } = setup([]);
    expect(gt.mapGrant(0, DOM0, true).status).toBe(GNTST.bad_gntref);
  });

  it('guest map_grant_ref: device_map of its own grant; host_map, other domains, foreign handles refused', () => {
    const { gt, call, entry, i16, mem } = setup();
    entry(8, GTF.permit_access, 1, 50);
    expect(call(GNTTABOP.map_grant_ref, [[8, 4, GNTMAP.device_map | GNTMAP.readonly], [12, 4, 8], [16, 2, DOMID_SELF]])).toBe(0);
    expect(i16(18)).toBe(GNTST.okay);
    const handle = mem.read32(ARG + 20);
    expect(mem.read32(ARG + 24)).toBe(50 * 4096);
    expect(call(GNTTABOP.map_grant_ref, [[8, 4, GNTMAP.host_map], [12, 4, 8], [16, 2, DOMID_SELF]])).toBe(0);
    expect(i16(18)).toBe(GNTST.general_error);
    expect(call(GNTTABOP.map_grant_ref, [[8, 4, GNTMAP.device_map], [12, 4, 8], [16, 2, 0]])).toBe(0);
    expect(i16(18)).toBe(GNTST.bad_domain);
    expect(call(GNTTABOP.map_grant_ref, [[8, 4, 0], [12, 4, 8], [16, 2, DOMID_SELF]])).toBe(0);
    expect(i16(18)).toBe(GNTST.general_error);
    // A back end's mapping cannot be released by the guest.
    entry(9, GTF.permit_access, 0, 51);
    const back = gt.mapGrant(9, DOM0, false);
    expect(call(GNTTABOP.unmap_grant_ref, [[16, 4, back.handle]], 24)).toBe(0);
    expect(i16(20)).toBe(GNTST.bad_handle);
    expect(gt.frameOf(back.handle)).toBe(51);
    expect(call(GNTTABOP.unmap_grant_ref, [[16, 4, 0xdead]], 24)).toBe(0);
    expect(i16(20)).toBe(GNTST.bad_handle);
    expect(call(GNTTABOP.unmap_grant_ref, [[16, 4, handle]], 24)).toBe(0);
    expect(i16(20)).toBe(GNTST.okay);
  });

  it('copy: grant to own frame; foreign frames and out-of-page ranges refused', () => {
    const { call, entry, i16, mem } = setup();
    entry(8, GTF.permit_access, 1, 60);
    mem.u8.set([1, 2, 3, 4, 5], 60 * 4096 + 100);
    const copy = (srcU: number, srcOff: number, dstU: number, dstOff: number, len: number, flags: number): number => {
      expect(call(GNTTABOP.copy, [[0, 4, srcU], [4, 2, DOMID_SELF], [6, 2, srcOff], [8, 4, dstU], [12, 2, DOMID_SELF], [14, 2, dstOff], [16, 2, len], [18, 2, flags]], 24)).toBe(0);
      return i16(20);
    };
    expect(copy(8, 100, 61, 8, 5, GNTCOPY.source_gref)).toBe(GNTST.okay);
    expect([...mem.u8.subarray(61 * 4096 + 8, 61 * 4096 + 13)]).toEqual([1, 2, 3, 4, 5]);
    expect(copy(8, 100, OWNED_FRAMES + 2, 0, 5, GNTCOPY.source_gref)).toBe(GNTST.bad_page);
    expect(copy(8, 4000, 61, 0, 200, GNTCOPY.source_gref)).toBe(GNTST.bad_copy_arg);
    expect(copy(700, 0, 61, 0, 4, GNTCOPY.source_gref)).toBe(GNTST.bad_gntref);
    expect(mem.u8[(OWNED_FRAMES + 2) * 4096]).toBe(0);
  });

  it('whole-call errors: transfer and unknown commands -ENOSYS, bad count -EINVAL, unmapped argument -EFAULT', () => {
    const { gt } = setup();
    expect(gt.hypercall(GNTTABOP.transfer, ARG, 1)).toBe(-XEN_ERRNO.ENOSYS);
    expect(gt.hypercall(7, ARG, 1)).toBe(-XEN_ERRNO.ENOSYS);
    expect(gt.hypercall(GNTTABOP.query_size, ARG, -1)).toBe(-XEN_ERRNO.EINVAL);
    expect(gt.hypercall(GNTTABOP.query_size, ARG, 100_000)).toBe(-XEN_ERRNO.EINVAL);
    expect(gt.hypercall(GNTTABOP.query_size, 0xf000_0000, 1)).toBe(-XEN_ERRNO.EFAULT);
    expect(gt.hypercall(GNTTABOP.setup_table, OWNED_FRAMES * 4096 - 8, 1)).toBe(-XEN_ERRNO.EFAULT);
    expect(gt.hypercall(GNTTABOP.query_size, ARG, 0)).toBe(0);
  });

  it('with frame types (PvFrameTypes): a page-table frame is never mapped writable, nor made the table; references balance', () => {
    const PT = new Set([40, 41]);
    const refs = new Map<number, number>();
    const ctx = Object.assign(fakeContext(1), {
      getWritableRef(mfn: Mfn): boolean {
        if (PT.has(mfn as number)) return false;
        refs.set(mfn as number, (refs.get(mfn as number) ?? 0) + 1);
        return true;
      },
      putWritableRef(mfn: Mfn): void { refs.set(mfn as number, refs.get(mfn as number)! - 1); },
    });
    const gt = new GrantTable(ctx, COSTS);
    const mem = ctx.mem;
    const setupTable = (frame: number): number => {
      mem.write32(LIST, frame);
      mem.u8.fill(0, ARG, ARG + 16);
      mem.write16(ARG, DOMID_SELF); mem.write32(ARG + 4, 1); mem.write32(ARG + 12, LIST);
      expect(gt.hypercall(GNTTABOP.setup_table, ARG, 1)).toBe(0);
      return (mem.read16(ARG + 8) << 16) >> 16;
    };
    expect(setupTable(41)).toBe(GNTST.general_error);
    expect(gt.nrFrames).toBe(0);
    expect(setupTable(TABLE_MFN)).toBe(GNTST.okay);
    expect(refs.get(TABLE_MFN)).toBe(1);
    const entry = (ref: number, frame: number): void => { const at = TABLE_MFN * 4096 + ref * 8; mem.write16(at + 2, 0); mem.write32(at + 4, frame); mem.write16(at, GTF.permit_access); };
    entry(8, 40); entry(9, 50);
    expect(gt.mapGrant(8, DOM0, false).status).toBe(GNTST.general_error);
    expect(ctx.rejected.get('grant-typed-frame')).toBe(1);
    const ro = gt.mapGrant(8, DOM0, true); // reading a page table is allowed
    expect(ro.status).toBe(0);
    const rw = gt.mapGrant(9, DOM0, false);
    expect(rw.status).toBe(0);
    expect(refs.get(50)).toBe(1);
    gt.unmapGrant(rw.handle); gt.unmapGrant(ro.handle);
    expect(refs.get(50)).toBe(0);
    expect(refs.has(40)).toBe(false);
    // Setting the table up again moves the reference.
    expect(setupTable(21)).toBe(GNTST.okay);
    expect(refs.get(TABLE_MFN)).toBe(0);
    expect(refs.get(21)).toBe(1);
  });

  it('property: whatever the table holds, a mapping is only ever of a frame the granter owns, for the named domain', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 300 })), { minLength: 16, maxLength: 16 }),
      fc.array(fc.tuple(fc.integer({ min: -2, max: 20 }), fc.boolean()), { maxLength: 40 }),
      (entries, maps) => {
        const { gt, entry, ctx } = setup();
        entries.forEach(([flags, domid, frame], i) => entry(i, flags, domid, frame));
        for (const [ref, ro] of maps) {
          const m = gt.mapGrant(ref, DOM0, ro);
          if (m.status === 0) {
            const [flags, domid, frame] = entries[ref]!;
            expect(ctx.ownsMfn(m.mfn as Mfn)).toBe(true);
            expect(m.mfn).toBe(frame);
            expect(domid).toBe(0);
            expect(flags & GTF.type_mask).toBe(GTF.permit_access);
            if (!ro) expect(flags & GTF.readonly).toBe(0);
          } else {
            expect(m.status).toBeLessThan(0);
          }
        }
      }), { numRuns: 200 });
  });
});
