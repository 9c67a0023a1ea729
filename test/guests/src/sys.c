/* sys: a small protected-mode kernel exercising the system architecture: its own GDT
 * (ring 0/3 code and data, a TSS with ESP0), an IDT with exception and IRQ handlers,
 * paging (4 KiB identity pages plus a 4 MiB PSE page, demand paging in a window, CR0.WP,
 * a supervisor-only and a read-only page, INVLPG), the 8259 PIC remapped and the PIT
 * ticking, a drop to ring 3 through IRET, system calls through INT 0x80 and SYSENTER,
 * and faults from ring 3 (#GP from privileged instructions, #PF, #BP) caught and reported.
 *
 * Built with -DHEAVY it is the syscall-heavy benchmark instead: ring 3 loops over system
 * calls, demand faults and unmaps (INVLPG) with the timer running.
 *
 * Nothing printed depends on timing: only that the tick count moved. */
#include "lib.h"

#define KCODE 0x08
#define KDATA 0x10
#define UCODE 0x1b
#define UDATA 0x23
#define TSS_SEL 0x28

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PTE_PS 0x080u

/* The demand-paged window (8 MiB .. 12 MiB) and the frame pool (the 4 MiB PSE page). */
#define DEMAND_BASE 0x00800000u
#define DEMAND_SIZE 0x00400000u
#define POOL_BASE 0x00400000u
#define POOL_FRAMES 1024u

/* ---------------------------------------------------------------------------------------- */
/* Descriptor tables */

struct tss {
  u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
  u32 eax, ecx, edx, ebx, esp, ebp, esi, edi;
  u32 es, cs, ss, ds, fs, gs, ldt;
  u16 trap, iomap;
} __attribute__((packed));

static u64 gdt[6] __attribute__((aligned(8)));
static u64 idt[256] __attribute__((aligned(8)));
static struct tss tss __attribute__((aligned(128)));
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 sysenter_stack[4096] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));

static u64 seg_desc(u32 base, u32 limit, u32 access, u32 flags) {
  return (u64)(limit & 0xffff) | ((u64)(base & 0xffffff) << 16) | ((u64)access << 40) |
         ((u64)((limit >> 16) & 0xf) << 48) | ((u64)flags << 52) | ((u64)(base >> 24) << 56);
}

static void set_gate(int vec, void (*fn)(void), int dpl) {
  u32 off = (u32)fn;
  idt[vec] = (u64)(off & 0xffff) | ((u64)KCODE << 16) | ((u64)(0x8e | (dpl << 5)) << 40) |
             ((u64)(off >> 16) << 48);
}

struct dtr { u16 limit; u32 base; } __attribute__((packed));

#define ISR(n) extern void isr_##n(void);
ISR(0) ISR(1) ISR(2) ISR(3) ISR(4) ISR(5) ISR(6) ISR(7) ISR(8) ISR(9) ISR(10) ISR(11) ISR(12)
ISR(13) ISR(14) ISR(15) ISR(16) ISR(17) ISR(18) ISR(19)
ISR(32) ISR(33) ISR(34) ISR(35) ISR(36) ISR(37) ISR(38) ISR(39) ISR(40) ISR(41) ISR(42) ISR(43)
ISR(44) ISR(45) ISR(46) ISR(47) ISR(128) ISR(129)
extern void sysenter_entry(void);
extern u32 enter_user(u32 eip, u32 esp);
extern __attribute__((noreturn)) void return_to_kernel(u32 code);

static void setup_tables(void) {
  gdt[0] = 0;
  gdt[1] = seg_desc(0, 0xfffff, 0x9a, 0xc);
  gdt[2] = seg_desc(0, 0xfffff, 0x92, 0xc);
  gdt[3] = seg_desc(0, 0xfffff, 0xfa, 0xc);
  gdt[4] = seg_desc(0, 0xfffff, 0xf2, 0xc);
  gdt[5] = seg_desc((u32)&tss, sizeof tss - 1, 0x89, 0x0);
  tss.ss0 = KDATA;
  tss.esp0 = (u32)&kstack[sizeof kstack];
  tss.iomap = sizeof tss;   /* no I/O permission bitmap: ring 3 port access faults */
  struct dtr g = { sizeof gdt - 1, (u32)gdt };
  __asm__ volatile("lgdt %0\n\t"
                   "ljmp %1, $1f\n1:\n\t"
                   "mov %2, %%ax\n\tmov %%ax, %%ds\n\tmov %%ax, %%es\n\tmov %%ax, %%ss\n\t"
                   "mov %%ax, %%fs\n\tmov %%ax, %%gs"
                   : : "m"(g), "i"(KCODE), "i"(KDATA) : "eax", "memory");
  __asm__ volatile("ltr %w0" : : "r"(TSS_SEL));

  static void (*const exc[20])(void) = { isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7,
    isr_8, isr_9, isr_10, isr_11, isr_12, isr_13, isr_14, isr_15, isr_16, isr_17, isr_18, isr_19 };
  static void (*const irq[16])(void) = { isr_32, isr_33, isr_34, isr_35, isr_36, isr_37, isr_38,
    isr_39, isr_40, isr_41, isr_42, isr_43, isr_44, isr_45, isr_46, isr_47 };
  for (int i = 0; i < 20; i++) set_gate(i, exc[i], i == 3 ? 3 : 0);
  for (int i = 0; i < 16; i++) set_gate(32 + i, irq[i], 0);
  set_gate(0x80, isr_128, 3);
  set_gate(0x81, isr_129, 0);   /* INT 0x81 from ring 3 must #GP */
  struct dtr d = { sizeof idt - 1, (u32)idt };
  __asm__ volatile("lidt %0" : : "m"(d));

  /* SYSENTER: CS, ESP, EIP MSRs. */
  __asm__ volatile("wrmsr" : : "c"(0x174), "a"(KCODE), "d"(0));
  __asm__ volatile("wrmsr" : : "c"(0x175), "a"((u32)&sysenter_stack[sizeof sysenter_stack]), "d"(0));
  __asm__ volatile("wrmsr" : : "c"(0x176), "a"((u32)sysenter_entry), "d"(0));
}

/* ---------------------------------------------------------------------------------------- */
/* Paging */

static u32 page_dir[1024] __attribute__((aligned(4096)));
static u32 pt_low[1024] __attribute__((aligned(4096)));
static u32 pt_demand[1024] __attribute__((aligned(4096)));
/* A page ring 3 may not touch, and one it may only read. */
static volatile u32 secret_page[1024] __attribute__((aligned(4096)));
static volatile u32 ro_page[1024] __attribute__((aligned(4096)));

static u32 next_frame;
static u32 pf_count;

static void setup_paging(void) {
  for (u32 i = 0; i < 1024; i++) pt_low[i] = (i << 12) | PTE_P | PTE_W | PTE_U;
  pt_low[(u32)secret_page >> 12] &= ~PTE_U;
  pt_low[(u32)ro_page >> 12] &= ~PTE_W;
  page_dir[0] = (u32)pt_low | PTE_P | PTE_W | PTE_U;
  page_dir[1] = POOL_BASE | PTE_P | PTE_W | PTE_PS;          /* supervisor 4 MiB page */
  page_dir[2] = (u32)pt_demand | PTE_P | PTE_W | PTE_U;
  __asm__ volatile("mov %0, %%cr3" : : "r"(page_dir) : "memory");
  u32 cr4;
  __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
  __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");            /* PSE */
  u32 cr0;
  __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
  __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory");     /* PG, WP */
}

static void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

static u32 alloc_frame(void) {
  u32 f = POOL_BASE + (next_frame % POOL_FRAMES) * 4096;
  next_frame++;
  u32 d = f, n = 1024;
  __asm__ volatile("rep stosl" : "+D"(d), "+c"(n) : "a"(0) : "memory");
  return f;
}

static void unmap(u32 va) {
  pt_demand[(va - DEMAND_BASE) >> 12] = 0;
  invlpg(va);
}

/* ---------------------------------------------------------------------------------------- */
/* PIC and PIT */

static volatile u32 ticks;

static void setup_timer(void) {
  outb(0x20, 0x11); outb(0xa0, 0x11);     /* ICW1: edge, cascade, ICW4 */
  outb(0x21, 0x20); outb(0xa1, 0x28);     /* ICW2: vectors 0x20 and 0x28 */
  outb(0x21, 0x04); outb(0xa1, 0x02);     /* ICW3 */
  outb(0x21, 0x01); outb(0xa1, 0x01);     /* ICW4: 8086 mode */
  outb(0x21, 0xfe); outb(0xa1, 0xff);     /* only IRQ0 */
  outb(0x43, 0x34);                        /* channel 0, lo/hi, mode 2 */
  outb(0x40, 1193 & 0xff); outb(0x40, 1193 >> 8);   /* ~1 kHz */
}

/* ---------------------------------------------------------------------------------------- */
/* Traps */

struct frame {
  u32 gs, fs, es, ds;
  u32 edi, esi, ebp, esp0, ebx, edx, ecx, eax;
  u32 vector, err;
  u32 eip, cs, eflags, user_esp, user_ss;
};

/* The next fault of this vector is expected: report it and skip this many bytes. */
static int expect_vec = -1;
static u32 expect_skip;
static u32 syscalls;

static void expect(int vec, u32 skip) {
  expect_vec = vec;
  expect_skip = skip;
  __asm__ volatile("" : : : "memory");   /* the next fault reads these */
}

enum { SYS_EXIT, SYS_WRITE, SYS_GETPID, SYS_ADD, SYS_TICKS, SYS_UNMAP, SYS_EXPECT, SYS_PUTHEX };

static u32 do_syscall(u32 n, u32 a, u32 b) {
  if (n != SYS_TICKS) syscalls++;   /* how often ring 3 polls the clock depends on timing */
  switch (n) {
    case SYS_EXIT: return_to_kernel(a);
    case SYS_WRITE: puts((const char *)a); return 0;
    case SYS_GETPID: return 42;
    case SYS_ADD: return a + b;
    case SYS_TICKS: return ticks;
    case SYS_UNMAP: unmap(a); return 0;
    case SYS_EXPECT: expect((int)a, b); return 0;
    case SYS_PUTHEX: puthex(a); return 0;
    default: return 0xffffffffu;
  }
}

u32 sysenter_dispatch(u32 n, u32 a) { return do_syscall(n, a, 0); }

static void report(struct frame *f, u32 cr2) {
  puts("  exception "); putdec(f->vector);
  puts(" err "); puthex(f->err);
  puts(" eip "); puthex(f->eip);
  puts(" cpl "); putdec(f->cs & 3);
  if (f->vector == 14) { puts(" cr2 "); puthex(cr2); }
  putc_e9('\n');
}

void isr_dispatch(struct frame *f) {
  u32 v = f->vector;
  if (v >= 32 && v < 48) {
    if (v == 32) ticks++;
    if (v == 39 || v == 47) return;        /* spurious: no EOI */
    if (v >= 40) outb(0xa0, 0x20);
    outb(0x20, 0x20);
    return;
  }
  if (v == 0x80) { f->eax = do_syscall(f->eax, f->ebx, f->ecx); return; }
  u32 cr2 = 0;
  if (v == 14) {
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if (cr2 - DEMAND_BASE < DEMAND_SIZE && (f->err & PTE_P) == 0) {
      pt_demand[(cr2 - DEMAND_BASE) >> 12] = alloc_frame() | PTE_P | PTE_W | PTE_U;
      pf_count++;
      return;                               /* restart the faulting instruction */
    }
  }
#ifndef HEAVY
  if (v == 3) { puts("  breakpoint, eip "); puthex(f->eip); puts(" cpl "); putdec(f->cs & 3); putc_e9('\n'); return; }
#endif
  report(f, cr2);
  if ((int)v == expect_vec) {
    f->eip += expect_skip;
    expect_vec = -1;
    return;
  }
  puts("unexpected exception: stopping\n");
  exit_qemu(0x7e);
}

/* ---------------------------------------------------------------------------------------- */
/* Ring 3 */

#define USER __attribute__((noinline, section(".text.user")))

static inline u32 sys3(u32 n, u32 a, u32 b) {
  u32 r;
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b) : "memory");
  return r;
}

static inline u32 sysenter(u32 n, u32 a) {
  u32 r;
  __asm__ volatile("movl %%esp, %%ecx\n\tmovl $1f, %%edx\n\tsysenter\n1:"
                   : "=a"(r) : "a"(n), "b"(a) : "ecx", "edx", "memory");
  return r;
}

#ifndef HEAVY
static const char msg_hello[] = "  hello from ring 3\n";
static const char msg_sysenter[] = "  sysenter/sysexit round trip\n";
static const char msg_ticks[] = "  ticks advanced while in ring 3\n";
static const char msg_nl[] = "\n";
static const char msg_cpl[] = "  cs.rpl fs gs: ";
static const char msg_sum[] = "  demand pages sum ";

USER void user_main(void) {
  sys3(SYS_WRITE, (u32)msg_hello, 0);
  u32 cs, fs, gs;
  __asm__ volatile("mov %%cs, %0\n\tmov %%fs, %1\n\tmov %%gs, %2" : "=r"(cs), "=r"(fs), "=r"(gs));
  sys3(SYS_WRITE, (u32)msg_cpl, 0);
  sys3(SYS_PUTHEX, (cs & 3) << 16 | (fs & 0xff) << 8 | (gs & 0xff), 0);
  sys3(SYS_WRITE, (u32)msg_nl, 0);
  if (sys3(SYS_GETPID, 0, 0) != 42) sys3(SYS_EXIT, 0xbad1, 0);
  if (sys3(SYS_ADD, 40000, 2345) != 42345) sys3(SYS_EXIT, 0xbad2, 0);
  if (sysenter(SYS_GETPID, 0) != 42) sys3(SYS_EXIT, 0xbad3, 0);
  sysenter(SYS_WRITE, (u32)msg_sysenter);

  /* Demand paging from ring 3: five pages, written then read back. */
  volatile u32 *p = (volatile u32 *)DEMAND_BASE;
  for (u32 i = 0; i < 5; i++) p[i * 1024 + i] = 0x1000 + i;
  u32 sum = 0;
  for (u32 i = 0; i < 5; i++) sum += p[i * 1024 + i] + p[i * 1024 + 1023];
  sys3(SYS_WRITE, (u32)msg_sum, 0);
  sys3(SYS_PUTHEX, sum, 0);
  sys3(SYS_WRITE, (u32)msg_nl, 0);

  /* Privileged or forbidden in ring 3: each faults; the kernel reports and skips it. */
  sys3(SYS_EXPECT, 13, 1); __asm__ volatile("cli");
  sys3(SYS_EXPECT, 13, 1); __asm__ volatile("hlt");
  sys3(SYS_EXPECT, 13, 2); __asm__ volatile("inb $0x60, %%al" : : : "eax");
  sys3(SYS_EXPECT, 13, 3); __asm__ volatile("mov %%cr0, %%eax" : : : "eax");
  sys3(SYS_EXPECT, 13, 2); __asm__ volatile("int $0x81");
  sys3(SYS_EXPECT, 13, 3); __asm__ volatile("lgdt (%%eax)" : : "a"(0));
  sys3(SYS_EXPECT, 14, 5); __asm__ volatile("movl %0, %%eax" : : "m"(secret_page[0]) : "eax");
  sys3(SYS_EXPECT, 14, 5); __asm__ volatile("movl %%eax, %0" : "=m"(ro_page[1]) : "a"(7));
  sys3(SYS_EXPECT, 14, 10); __asm__ volatile("movl $1, 0x40000000" : : : "memory");
  __asm__ volatile("int3");

  /* The timer interrupts ring 3 (a stack switch through TSS.ESP0). */
  u32 t0 = sys3(SYS_TICKS, 0, 0), spin = 0;
  while (sys3(SYS_TICKS, 0, 0) == t0) spin++;
  sys3(SYS_WRITE, (u32)msg_ticks, 0);
  sys3(SYS_EXIT, 7, 0);
}

static void kernel_tests(void) {
  /* Divide errors: by zero and quotient overflow. */
  puts("divide errors\n");
  expect(0, 2);
  u32 q = 5, d = 0;
  __asm__ volatile("xorl %%edx, %%edx\n\tdivl %1" : "+a"(q) : "c"(d) : "edx", "cc");
  expect(0, 2);
  __asm__ volatile("movl $0x80000000, %%eax\n\tcltd\n\tidivl %0" : : "c"(-1) : "eax", "edx", "cc");

  /* CR0.WP: the kernel may not write a read-only page either. */
  puts("kernel write to read-only page\n");
  expect(14, 10);
  __asm__ volatile("movl $5, %0" : "=m"(ro_page[2]) : : "memory");
  puts("  ro_page[2] "); puthex(ro_page[2]); putc_e9('\n');

  /* The 4 MiB page and the pool. */
  volatile u32 *big = (volatile u32 *)(POOL_BASE + 0x3ffffc);
  *big = 0xc0ffee;
  puts("4 MiB page readback "); puthex(*big); putc_e9('\n');

  /* Accessed and dirty bits of demand pages, and INVLPG after a remap. */
  volatile u32 *w = (volatile u32 *)(DEMAND_BASE + 0x100000);
  volatile u32 *r = (volatile u32 *)(DEMAND_BASE + 0x101000);
  *w = 1;
  u32 x = *r;
  puts("pte bits written "); puthex_n(pt_demand[0x100] & (PTE_A | PTE_D), 2);
  puts(" read "); puthex_n(pt_demand[0x101] & (PTE_A | PTE_D), 2);
  puts(" value "); puthex(x); putc_e9('\n');
  u32 f1 = pt_demand[0x100] & ~0xfffu;
  u32 f2 = alloc_frame();
  *(volatile u32 *)f2 = 0x2222;
  *(volatile u32 *)f1 = 0x1111;
  pt_demand[0x100] = f2 | PTE_P | PTE_W | PTE_U;
  invlpg((u32)w);
  puts("after remap and invlpg "); puthex(*w); putc_e9('\n');
  puts("page faults so far "); putdec(pf_count); putc_e9('\n');
}
#else
/* ---- the syscall-heavy benchmark ---- */
#ifndef ITER
#define ITER 20000
#endif
static const char msg_done[] = "  ring 3 loop done, checksum ";
static const char msg_nl[] = "\n";

USER void user_main(void) {
  u32 sum = 0;
  for (u32 i = 0; i < ITER; i++) {
    u32 va = DEMAND_BASE + (i & 63) * 4096;
    sum += sys3(SYS_ADD, i, sum);
    sum ^= sysenter(SYS_GETPID, 0);
    *(volatile u32 *)(va + (i & 1023) * 4) = sum;   /* a demand fault */
    sum += *(volatile u32 *)(va + (i & 1023) * 4);
    sys3(SYS_UNMAP, va, 0);                          /* PTE cleared + INVLPG */
  }
  sys3(SYS_WRITE, (u32)msg_done, 0);
  sys3(SYS_PUTHEX, sum, 0);
  sys3(SYS_WRITE, (u32)msg_nl, 0);
  sys3(SYS_EXIT, 9, 0);
}
#endif

u32 kmain(u32 magic, void *mbi) {
  if (magic != MB_BOOT_MAGIC) return 0x7f;
#ifdef HEAVY
  puts("sys-heavy: "); putdec(ITER); puts(" iterations\n");
#else
  puts("sys kernel\n");
#endif
  setup_tables();
  puts("gdt, idt, tss loaded\n");
  setup_paging();
  puts("paging on\n");
  setup_timer();
  __asm__ volatile("sti");
  while (ticks < 3) __asm__ volatile("hlt");
  __asm__ volatile("cli");
  puts("timer ticking\n");
#ifndef HEAVY
  kernel_tests();
#endif
  puts("entering ring 3\n");
  u32 code = enter_user((u32)user_main, (u32)&ustack[sizeof ustack]);
  puts("back in ring 0, user exit code "); putdec(code); putc_e9('\n');
  puts("syscalls "); putdec(syscalls); puts(", demand faults "); putdec(pf_count);
  puts(", ticks "); puts(ticks > 0 ? "> 0" : "= 0"); putc_e9('\n');
  return code == 7 || code == 9 ? 0x22 : 0x7d;
}
