/* Segment limit and access-rights checks on data accesses are left out: QEMU's TCG does
 * not make them, so it cannot be the oracle for them.
 *
 * prot: protected-mode segmentation and system instructions at CPL 0. Its own GDT (code
 * and data of several kinds: based, limited, expand-down, read-only, execute-only, not
 * present, DPL 3, 16-bit code, an LDT, a call gate, a TSS), then: SGDT/SIDT/SLDT/STR/SMSW,
 * LAR/LSL/VERR/VERW over every selector, segment-register loads that must fault (#GP/#NP
 * with the selector as error code), limit and type checks on data accesses, far CALL/JMP/
 * RETF (direct, indirect, RETF imm, a call gate, into a 16-bit code segment), LDS/LES/LFS/
 * LGS/LSS, segment push/pop, ARPL, BOUND/INTO/INT n/UD2, control/debug registers, LMSW/CLTS,
 * MSRs, and IRET at the same privilege. Faults are caught by the IDT stubs of sys_asm.S,
 * reported (vector, error code, EIP) and skipped. */
#include "lib.h"

#define KCODE 0x08
#define KDATA 0x10

struct dtr { u16 limit; u32 base; } __attribute__((packed));

static u64 gdt[14] __attribute__((aligned(8)));
static u64 ldt[2] __attribute__((aligned(8)));
static u64 idt[256] __attribute__((aligned(8)));
static u8 tss[104] __attribute__((aligned(16)));

static u64 seg_desc(u32 base, u32 limit, u32 access, u32 flags) {
  return (u64)(limit & 0xffff) | ((u64)(base & 0xffffff) << 16) | ((u64)access << 40) |
         ((u64)((limit >> 16) & 0xf) << 48) | ((u64)flags << 52) | ((u64)(base >> 24) << 56);
}

static u64 gate_desc(u16 sel, u32 off, u32 access) {
  return (u64)(off & 0xffff) | ((u64)sel << 16) | ((u64)access << 40) | ((u64)(off >> 16) << 48);
}

extern void isr_0(void), isr_1(void), isr_2(void), isr_3(void), isr_4(void), isr_5(void),
    isr_6(void), isr_7(void), isr_8(void), isr_9(void), isr_10(void), isr_11(void),
    isr_12(void), isr_13(void), isr_14(void), isr_15(void), isr_16(void), isr_17(void),
    isr_18(void), isr_19(void), isr_128(void);
extern void far_ret_plain(void), far_ret_imm(void), gate_target(void);
extern u32 call16_test(u32 x);
extern const char code16_base[], code16_end[];

/* Not used here, but sys_asm.S refers to it. */
u32 sysenter_dispatch(u32 n, u32 a) { return 0; }

/* ---------------------------------------------------------------------------------------- */
/* Traps */

struct frame {
  u32 gs, fs, es, ds;
  u32 edi, esi, ebp, esp0, ebx, edx, ecx, eax;
  u32 vector, err;
  u32 eip, cs, eflags;
};

/* The next fault must have this vector; the handler resumes at expect_resume, which the
 * faulting asm sets to the label after the instruction (see TRY). */
static volatile int expect_vec = -1;
volatile u32 expect_resume;

#define TRY(vec, code, ...)                                                                \
  do {                                                                                     \
    expect_vec = (vec);                                                                    \
    __asm__ volatile("movl $9f, expect_resume\n\t" code "\n9:" __VA_ARGS__);             \
    if (expect_vec != -1) puts("  (no fault)\n");                                          \
    expect_vec = -1;                                                                       \
  } while (0)

void isr_dispatch(struct frame *f) {
  puts("  exception "); putdec(f->vector);
  puts(" err "); puthex_n(f->err, 4);
  puts(" eip "); puthex(f->eip);
  if (f->vector == 0x80) { puts(" eax "); puthex(f->eax); f->eax ^= 0xffff; putc_e9('\n'); return; }
  putc_e9('\n');
  if ((int)f->vector == expect_vec) {
    f->eip = expect_resume;
    expect_vec = -1;
    /* A fault may leave a data segment register as it was; reload the flat ones. */
    f->ds = f->es = KDATA;
    return;
  }
  puts("unexpected exception: stopping\n");
  exit_qemu(0x7e);
}

static void setup(void) {
  /* Accessed bit preset: loading CS sets it on Intel CPUs (and virtlab) but not in QEMU's
   * TCG, so a clear bit would make LAR differ for a reason that is QEMU's. */
  gdt[1] = seg_desc(0, 0xfffff, 0x9b, 0xc);                 /* 0x08 code32 */
  gdt[2] = seg_desc(0, 0xfffff, 0x92, 0xc);                 /* 0x10 data32 */
  gdt[3] = seg_desc((u32)code16_base, 0xffff, 0x9a, 0x0);   /* 0x18 code16 */
  gdt[4] = seg_desc(0x12340, 0xfff, 0x92, 0x4);             /* 0x20 based, byte limit */
  gdt[5] = seg_desc(0, 0xfff, 0x96, 0x4);                   /* 0x28 expand-down, B=1 */
  gdt[6] = seg_desc(0, 0xfffff, 0x90, 0xc);                 /* 0x30 read-only */
  gdt[7] = seg_desc(0, 0xfffff, 0x98, 0xc);                 /* 0x38 execute-only code */
  gdt[8] = seg_desc(0, 0xfffff, 0x12, 0xc);                 /* 0x40 not present */
  gdt[9] = seg_desc(0, 0xfffff, 0xf2, 0xc);                 /* 0x48 data DPL 3 */
  gdt[10] = seg_desc((u32)ldt, sizeof ldt - 1, 0x82, 0x0);  /* 0x50 LDT */
  gdt[11] = gate_desc(KCODE, (u32)gate_target, 0x8c);       /* 0x58 call gate */
  gdt[12] = seg_desc((u32)tss, sizeof tss - 1, 0x89, 0x0);  /* 0x60 TSS */
  gdt[13] = seg_desc(0, 0xfffff, 0xfe, 0xc);                /* 0x68 conforming code DPL 3 */
  ldt[0] = seg_desc(0x5000, 0xffff, 0x92, 0x4);             /* 0x04 */
  ldt[1] = seg_desc(0, 0xfffff, 0x9a, 0xc);                 /* 0x0c code in the LDT */
  struct dtr g = { sizeof gdt - 1, (u32)gdt };
  __asm__ volatile("lgdt %0\n\tljmp $0x08, $1f\n1:\n\t"
                   "mov $0x10, %%ax\n\tmov %%ax, %%ds\n\tmov %%ax, %%es\n\tmov %%ax, %%ss\n\tmov %%ax, %%fs\n\tmov %%ax, %%gs"
                   : : "m"(g) : "eax", "memory");
  static void (*const exc[20])(void) = { isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7,
    isr_8, isr_9, isr_10, isr_11, isr_12, isr_13, isr_14, isr_15, isr_16, isr_17, isr_18, isr_19 };
  for (int i = 0; i < 20; i++) idt[i] = gate_desc(KCODE, (u32)exc[i], 0x8e);
  idt[0x80] = gate_desc(KCODE, (u32)isr_128, 0x8e);
  idt[0x81] = gate_desc(KCODE, (u32)isr_128, 0x0e);   /* not present: INT 0x81 raises #NP */
  struct dtr d = { sizeof idt - 1, (u32)idt };
  __asm__ volatile("lidt %0" : : "m"(d));
  __asm__ volatile("lldt %w0" : : "r"(0x50));
  __asm__ volatile("ltr %w0" : : "r"(0x60));
}

/* ---------------------------------------------------------------------------------------- */

static void tables(void) {
  struct dtr g, i;
  u32 ldtr = 0xffffffff, tr = 0xffffffff, msw = 0xffffffff;
  __asm__ volatile("sgdt %0\n\tsidt %1" : "=m"(g), "=m"(i));
  __asm__ volatile("sldt %k0" : "+r"(ldtr));
  __asm__ volatile("str %k0" : "+r"(tr));
  __asm__ volatile("smsw %k0" : "+r"(msw));
  puts("sgdt limit "); puthex_n(g.limit, 4); puts(g.base == (u32)gdt ? " base ok" : " base BAD");
  puts("; sidt limit "); puthex_n(i.limit, 4); puts(i.base == (u32)idt ? " base ok\n" : " base BAD\n");
  /* The register forms with a 32-bit operand: P6 zero-extends the selector. */
  puts("sldt "); puthex(ldtr); puts(" str "); puthex(tr);
  puts(" smsw.pe,et "); puthex_n(msw & 0x11, 2); putc_e9('\n');
  u16 mm = 0x5555;
  __asm__ volatile("smsw %0" : "=m"(mm));
  puts("smsw m16 pe,et "); puthex_n(mm & 0x11, 2); putc_e9('\n');
}

static void access_rights(void) {
  static const u16 sels[] = { 0x00, 0x08, 0x10, 0x13, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x4b,
                              0x50, 0x58, 0x60, 0x68, 0x6b, 0x70, 0x04, 0x0c, 0x14, 0xfff8 };
  puts("sel  lar      z lsl      z verr verw\n");
  for (unsigned k = 0; k < sizeof sels / sizeof sels[0]; k++) {
    u32 s = sels[k], lar = 0x5a5a5a5a, lsl = 0x5a5a5a5a;
    u8 zl, zs, zr, zw;
    __asm__ volatile("larl %k2, %0\n\tsetz %1" : "+r"(lar), "=q"(zl) : "r"(s) : "cc");
    __asm__ volatile("lsll %k2, %0\n\tsetz %1" : "+r"(lsl), "=q"(zs) : "r"(s) : "cc");
    __asm__ volatile("verr %w1\n\tsetz %0" : "=q"(zr) : "r"(s) : "cc");
    __asm__ volatile("verw %w1\n\tsetz %0" : "=q"(zw) : "r"(s) : "cc");
    /* LAR bits 19:16 are undefined in the SDM: masked. */
    puthex_n(s, 4); putc_e9(' '); puthex(zl ? lar & 0x00f0ff00 : lar); putc_e9(' '); putdec(zl); putc_e9(' ');
    puthex(lsl); putc_e9(' '); putdec(zs); puts("    "); putdec(zr); puts("    "); putdec(zw); putc_e9('\n');
  }
  u32 lar16 = 0x5a5a5a5a;
  __asm__ volatile("larw %w1, %w0" : "+r"(lar16) : "r"(0x10) : "cc");
  puts("lar16 "); puthex(lar16); putc_e9('\n');
}

static void segment_loads(void) {
  puts("segment loads that fault\n");
  static const u16 bad_ds[] = { 0x38, 0x40, 0x70, 0x58, 0x13, 0x60, 0x50, 0x14 };
  for (unsigned k = 0; k < sizeof bad_ds / sizeof bad_ds[0]; k++) {
    puts(" ds <- "); puthex_n(bad_ds[k], 4); putc_e9('\n');
    TRY(bad_ds[k] == 0x40 ? 11 : 13, "mov %w0, %%ds", : : "r"((u32)bad_ds[k]) : "memory");
  }
  static const u16 bad_ss[] = { 0x00, 0x30, 0x48, 0x20 | 3 };
  for (unsigned k = 0; k < sizeof bad_ss / sizeof bad_ss[0]; k++) {
    puts(" ss <- "); puthex_n(bad_ss[k], 4); putc_e9('\n');
    TRY(13, "mov %w0, %%ss", : : "r"((u32)bad_ss[k]) : "memory");
  }
  /* Allowed at CPL 0: DPL 3 data, a readable code segment, the null selector. */
  u32 ok = 0;
  __asm__ volatile("mov %w1, %%fs\n\tmov %%fs, %0" : "=r"(ok) : "r"(0x48));
  puts(" fs <- 0048 ok, fs = "); puthex_n(ok, 4);
  __asm__ volatile("mov %w1, %%fs\n\tmov %%fs, %0" : "=r"(ok) : "r"(0x68));
  puts("; fs <- 0068 ok, fs = "); puthex_n(ok, 4);
  __asm__ volatile("mov %w1, %%fs\n\tmov %%fs, %0" : "=r"(ok) : "r"(0x0));
  puts("; fs <- 0000 ok, fs = "); puthex_n(ok, 4); putc_e9('\n');
}

static void limits(void) {
  puts("based and limited segments\n");
  volatile u32 *phys = (volatile u32 *)0x12340;
  phys[4] = 0;
  u32 v;
  __asm__ volatile("mov %w0, %%fs" : : "r"(0x20));
  __asm__ volatile("movl $0xfeedf00d, %%fs:0x10" : : : "memory");
  puts(" fs:0x10 -> phys "); puthex(phys[4]);
  __asm__ volatile("movl %%fs:0xffc, %0" : "=r"(v) : : "memory");
  puts(", fs:0xffc read ok\n");
  /* REP MOVS with an FS source override. */
  static u8 dst[16];
  for (int i = 0; i < 16; i++) ((volatile u8 *)0x12340)[0x20 + i] = (u8)(i * 7 + 1);
  u32 si = 0x20, di = (u32)dst, c = 16;
  __asm__ volatile("rep movsb %%fs:(%%esi), %%es:(%%edi)" : "+S"(si), "+D"(di), "+c"(c) : : "memory");
  u32 h = FNV_INIT;
  for (int i = 0; i < 16; i++) h = fnv(h, dst[i]);
  puts(" rep movs fs: "); puthex(h); putc_e9('\n');

  puts("expand-down segment\n");
  __asm__ volatile("mov %w0, %%gs" : : "r"(0x28));
  __asm__ volatile("movl $0x600d600d, %%gs:0x2000" : : : "memory");
  puts(" gs:0x2000 -> phys "); puthex(*(volatile u32 *)0x2000); putc_e9('\n');

  puts("read-only segment\n");
  __asm__ volatile("mov %w0, %%gs" : : "r"(0x30));
  __asm__ volatile("movl %%gs:0x2000, %0" : "=r"(v) : : "memory");
  puts(" read "); puthex(v); putc_e9('\n');

  puts("ldt segment\n");
  __asm__ volatile("mov %w0, %%fs\n\tmovl $0x1d71d7, %%fs:8" : : "r"(0x04) : "memory");
  puts(" fs(0004):8 -> phys "); puthex(*(volatile u32 *)0x5008); putc_e9('\n');
  __asm__ volatile("mov %w0, %%fs\n\tmov %w0, %%gs" : : "r"(KDATA));
}

/* ---------------------------------------------------------------------------------------- */

struct { u32 off; u16 sel; } __attribute__((packed)) farptr;
struct { u16 off; u16 sel; } __attribute__((packed)) farptr16;

static void far_transfers(void) {
  puts("far transfers\n");
  u32 r;
  __asm__ volatile("lcall $0x08, $far_ret_plain" : "=a"(r) : : "memory");
  puts(" lcall direct: cs<<16|pushed cs "); puthex(r); putc_e9('\n');
  farptr.off = (u32)far_ret_plain; farptr.sel = KCODE;
  __asm__ volatile("lcall *farptr" : "=a"(r) : : "memory");
  puts(" lcall indirect "); puthex(r); putc_e9('\n');
  u32 sp0, sp1;
  __asm__ volatile("movl %%esp, %1\n\tpushl $0x1000\n\tpushl $0x234\n\tlcall $0x08, $far_ret_imm\n\tmovl %%esp, %2"
                   : "=a"(r), "=&r"(sp0), "=&r"(sp1) : : "memory");
  puts(" retf 8: "); puthex(r); puts(" esp delta "); putdec(sp0 - sp1); putc_e9('\n');
  __asm__ volatile("lcall $0x58, $0x12345678" : "=a"(r) : : "memory");
  puts(" call gate: cs "); puthex_n(r & 0xffff, 4); putc_e9('\n');
  r = 0;
  __asm__ volatile("ljmp $0x08, $1f\n\tmovl $1, %0\n1:" : "+r"(r));
  __asm__ volatile("movl $1f, farptr\n\tmovw $0x08, farptr+4\n\tljmp *farptr\n\torl $2, %0\n1:" : "+r"(r) : : "memory");
  puts(" ljmp direct and indirect: "); putdec(r); putc_e9('\n');
  r = call16_test(0x12345678);
  puts(" 16-bit code segment: "); puthex(r); putc_e9('\n');
  /* IRET to the same privilege level, with flags from the stack. */
  u32 fl;
  __asm__ volatile("pushfl\n\torl $0x8c5, (%%esp)\n\tpushl %%cs\n\tpushl $1f\n\tiret\n1:\tpushfl\n\tpopl %0\n\t"
                   "pushl $0x2\n\tpopfl" : "=r"(fl) : : "memory", "cc");
  puts(" iret flags "); puthex_n(fl & 0x8d5, 3); putc_e9('\n');
}

static void far_loads(void) {
  puts("lds/les/lfs/lgs/lss\n");
  u32 off, sel;
  farptr.off = 0xabcdef01; farptr.sel = 0x20;
  __asm__ volatile("lfs farptr, %0\n\tmov %%fs, %1" : "=r"(off), "=r"(sel) : : "memory");
  puts(" lfs "); puthex_n(sel, 4); putc_e9(':'); puthex(off); putc_e9('\n');
  farptr.sel = 0x48;
  __asm__ volatile("lgs farptr, %0\n\tmov %%gs, %1" : "=r"(off), "=r"(sel) : : "memory");
  puts(" lgs "); puthex_n(sel, 4); putc_e9(':'); puthex(off); putc_e9('\n');
  farptr.sel = KDATA;
  __asm__ volatile("les farptr, %0\n\tmov %%es, %1" : "=r"(off), "=r"(sel) : : "memory");
  puts(" les "); puthex_n(sel, 4); putc_e9(':'); puthex(off); putc_e9('\n');
  farptr16.off = 0x1234; farptr16.sel = KDATA;
  off = 0xffffffff;
  __asm__ volatile("ldsw farptr16, %w0\n\tmov %%ds, %1" : "+r"(off), "=r"(sel) : : "memory");
  puts(" lds m16:16 "); puthex_n(sel, 4); putc_e9(':'); puthex(off); putc_e9('\n');
  u32 before, after_;
  __asm__ volatile("movl %%esp, %0\n\tmovl %%esp, farptr\n\tmovw %%ss, farptr+4\n\tlss farptr, %%esp\n\tmovl %%esp, %1"
                   : "=&r"(before), "=r"(after_) : : "memory");
  puts(" lss same stack "); puts(before == after_ ? "ok\n" : "BAD\n");
  puts(" lfs with a not-present selector\n");
  farptr.sel = 0x40;
  TRY(11, "lfs farptr, %%eax", : : : "eax", "memory");
  __asm__ volatile("mov %w0, %%fs\n\tmov %w0, %%gs" : : "r"(KDATA));

  puts("segment push/pop\n");
  u32 d1, d2, g;
  __asm__ volatile("mov %w3, %%fs\n\tmovl %%esp, %0\n\tpushl %%fs\n\tpopl %%gs\n\tpushw %%fs\n\tmovl %%esp, %1\n\tpopw %%gs\n\tmov %%gs, %2\n\tmov %w4, %%fs\n\tmov %w4, %%gs"
                   : "=&r"(d1), "=&r"(d2), "=&r"(g) : "r"(0x20), "r"(KDATA) : "memory");
  puts(" pushw esp delta "); putdec(d1 - d2); puts(" gs "); puthex_n(g, 4); putc_e9('\n');
  u32 a = 0x1230, b = 0x0003, z;
  __asm__ volatile("arpl %w2, %w0\n\tsetz %b1" : "+r"(a), "=q"(z) : "r"(b) : "cc");
  puts(" arpl "); puthex_n(a, 4); putc_e9(' '); putdec(z & 1);
  a = 0x1233; b = 0x0001;
  __asm__ volatile("arpl %w2, %w0\n\tsetz %b1" : "+r"(a), "=q"(z) : "r"(b) : "cc");
  puts(", "); puthex_n(a, 4); putc_e9(' '); putdec(z & 1); putc_e9('\n');
}

static s32 bounds[2] = { -10, 100 };

static void exceptions(void) {
  puts("exceptions\n");
  puts(" bound in range: ");
  __asm__ volatile("boundl %0, (%1)" : : "r"(5), "r"(bounds) : "memory");
  puts("ok\n bound out of range\n");
  TRY(5, "boundl %%eax, (%%ecx)", : : "a"(101), "c"(bounds) : "memory");
  puts(" into with OF=1 (a trap: resumes after it)\n");
  TRY(4, "movl $0x7fffffff, %%eax\n\taddl $1, %%eax\n\tinto", : : : "eax", "memory", "cc");
  puts(" into with OF=0: ");
  __asm__ volatile("xorl %%eax, %%eax\n\tinto" : : : "eax", "cc");
  puts("ok\n");
  u32 r;
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(0x1234abcd) : "memory");
  puts(" int 0x80 returned "); puthex(r); putc_e9('\n');
  puts(" int 0x81 (gate not present)\n");
  TRY(11, "int $0x81", : : : "memory");
  puts(" ud2\n");
  TRY(6, "ud2", : : : "memory");
  puts(" mov to cr1\n");
  TRY(6, "movl %%eax, %%cr1", : : "a"(0) : "memory");
  puts(" lock on a register operand\n");
  TRY(6, ".byte 0xf0\n\taddl %%eax, %%eax", : : "a"(1) : "memory", "cc");
  puts(" far call to a data segment\n");
  TRY(13, "lcall $0x10, $0", : : : "memory");
  puts(" far jump beyond the gdt\n");
  TRY(13, "ljmp $0x70, $0", : : : "memory");
  puts(" far jump to a not-present code segment\n");
  gdt[8] = seg_desc(0, 0xfffff, 0x1a, 0xc);
  TRY(11, "ljmp $0x40, $0", : : : "memory");
  gdt[8] = seg_desc(0, 0xfffff, 0x12, 0xc);
}

static void control_regs(void) {
  puts("control and debug registers\n");
  u32 v, w;
  __asm__ volatile("movl %1, %%dr0\n\tmovl %%dr0, %0" : "=r"(v) : "r"(0x12345678));
  __asm__ volatile("movl %1, %%dr3\n\tmovl %%dr3, %0" : "=r"(w) : "r"(0xfffff000));
  puts(" dr0 "); puthex(v); puts(" dr3 "); puthex(w);
  __asm__ volatile("movl %1, %%dr7\n\tmovl %%dr7, %0" : "=r"(v) : "r"(0));
  puts(" dr7 "); puthex(v); putc_e9('\n');
  u32 cr0, cr0b, msw;
  __asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
  __asm__ volatile("movl %1, %%cr0\n\tclts\n\tmovl %%cr0, %0" : "=r"(cr0b) : "r"(cr0 | 8));
  puts(" clts clears ts: "); puts(cr0b & 8 ? "no" : "yes");
  __asm__ volatile("lmsw %w1\n\tsmsw %0" : "=r"(msw) : "r"(0xe));
  puts("; lmsw 0xe keeps pe: smsw & 0xf = "); puthex_n(msw & 0xf, 1);
  __asm__ volatile("movl %0, %%cr0" : : "r"(cr0));
  putc_e9('\n');
  u32 cr2;
  __asm__ volatile("movl %1, %%cr2\n\tmovl %%cr2, %0" : "=r"(cr2) : "r"(0xdeadb000));
  puts(" cr2 "); puthex(cr2);
  u32 lo, hi;
  __asm__ volatile("wrmsr" : : "c"(0x174), "a"(0x1234), "d"(0));
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x174));
  puts(" sysenter_cs msr "); puthex(hi); puthex(lo); putc_e9('\n');
  __asm__ volatile("wbinvd\n\tinvd" : : : "memory");
  u32 t0, t1, d;
  __asm__ volatile("rdtsc" : "=a"(t0), "=d"(d));
  __asm__ volatile("rdtsc" : "=a"(t1), "=d"(d));
  puts(" wbinvd/invd ok; rdtsc advances: "); puts(t1 != t0 ? "yes\n" : "no\n");
}

u32 kmain(u32 magic, void *mbi) {
  if (magic != MB_BOOT_MAGIC) return 0x7f;
  puts("prot: segmentation and system instructions\n");
  setup();
  tables();
  access_rights();
  segment_loads();
  limits();
  far_transfers();
  far_loads();
  exceptions();
  control_regs();
  puts("prot done\n");
  return 0x66;
}
