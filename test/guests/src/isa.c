/* isa: a broad integer-instruction self-test. Each group runs one instruction form over
 * pseudo-random operands (fixed-seed LCG, biased towards edge cases) and random input flags,
 * and prints an FNV-1a hash of the results and of EFLAGS masked to the flags the Intel SDM
 * defines for that instruction. The expected output is whatever QEMU prints; the guest
 * itself knows no answers. Built with -DVERBOSE it prints every case instead of hashes
 * (fewer cases), to find the failing inputs once a hash differs. */
#include "lib.h"

#ifndef CASES
#ifdef VERBOSE
#define CASES 6
#else
#define CASES 200
#endif
#endif

#define CF 0x001u
#define PF 0x004u
#define AF 0x010u
#define ZF 0x040u
#define SF 0x080u
#define OF 0x800u
#define ALLF (CF | PF | AF | ZF | SF | OF)
#define DF 0x400u

/* Random arithmetic flags for the instruction's input; DF, IF and TF stay clear. */
static u32 rflags(void) { return (rnd() & ALLF) | 2u; }

/* ---------------------------------------------------------------------------------------- */
/* Reporting */

static const char *g_name;
static u32 g_hash;

static void begin(const char *name) { g_name = name; g_hash = FNV_INIT; }

static void pad(const char *s, int w) {
  int n = 0;
  while (s[n]) n++;
  puts(s);
  for (; n < w; n++) putc_e9(' ');
}

static void end(void) {
#ifndef VERBOSE
  pad(g_name, 14);
  puthex(g_hash);
  putc_e9('\n');
#endif
}

/* One case: inputs a, b, flags-in, outputs r1, r2, flags-out (already masked). */
static void rec(u32 a, u32 b, u32 fi, u32 r1, u32 r2, u32 fo) {
  g_hash = fnv(fnv(fnv(g_hash, r1), r2), fo);
#ifdef VERBOSE
  pad(g_name, 14);
  puthex(a); putc_e9(' '); puthex(b); putc_e9(' '); puthex_n(fi, 3);
  puts(" -> "); puthex(r1); putc_e9(' '); puthex(r2); putc_e9(' '); puthex_n(fo, 3);
  putc_e9('\n');
#else
  (void)a; (void)b; (void)fi;
#endif
}

#define FL_IN "pushl %[fi]\n\tpopfl\n\t"
#define FL_OUT "\n\tpushfl\n\tpopl %[fo]"

/* ---------------------------------------------------------------------------------------- */
/* Two-operand ALU forms: reg,reg at 8 (low and high byte registers), 16 and 32 bits, and
 * reg,mem / mem,reg at 32 bits. The 8/16-bit forms keep the other register bits, checked. */

typedef u32 (*binfn)(u32 a, u32 b, u32 fi, u32 *fo);

#define DEF_BIN(NAME, INS)                                                                 \
  static u32 NAME##32(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "l %k[b], %k[a]" FL_OUT                                     \
                     : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");      \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##16(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "w %w[b], %w[a]" FL_OUT                                     \
                     : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");      \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##8(u32 a, u32 b, u32 fi, u32 *fo) {                                     \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "b %b[b], %b[a]" FL_OUT                                     \
                     : [a] "+q"(a), [fo] "=&r"(f) : [b] "q"(b), [fi] "r"(fi) : "cc");      \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##8h(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "b %h[b], %h[a]" FL_OUT                                     \
                     : [a] "+Q"(a), [fo] "=&r"(f) : [b] "Q"(b), [fi] "r"(fi) : "cc");      \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##_mr(u32 a, u32 b, u32 fi, u32 *fo) {                                   \
    u32 f; volatile u32 m = a;                                                             \
    __asm__ volatile(FL_IN INS "l %k[b], %[m]" FL_OUT                                      \
                     : [m] "+m"(m), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");      \
    *fo = f; return m;                                                                     \
  }                                                                                        \
  static u32 NAME##_rm(u32 a, u32 b, u32 fi, u32 *fo) {                                   \
    u32 f; volatile u32 m = b;                                                             \
    __asm__ volatile(FL_IN INS "l %[m], %k[a]" FL_OUT                                      \
                     : [a] "+r"(a), [fo] "=&r"(f) : [m] "m"(m), [fi] "r"(fi) : "cc");      \
    *fo = f; return a;                                                                     \
  }

DEF_BIN(add, "add")
DEF_BIN(adc, "adc")
DEF_BIN(sub, "sub")
DEF_BIN(sbb, "sbb")
DEF_BIN(cmp, "cmp")
DEF_BIN(and, "and")
DEF_BIN(or, "or")
DEF_BIN(xor, "xor")
DEF_BIN(test, "test")

/* Immediate forms (sign-extended imm8 and full imm32, and AL/AX/EAX short forms). */
#define DEF_IMM(NAME, INS, IMM)                                                            \
  static u32 NAME(u32 a, u32 b, u32 fi, u32 *fo) {                                         \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS " $" #IMM ", %k[a]" FL_OUT                                  \
                     : [a] "+r"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");                  \
    *fo = f; return a;                                                                     \
  }
DEF_IMM(addl_i8, "addl", -3)
DEF_IMM(adcl_i8, "adcl", 0x7f)
DEF_IMM(subl_i32, "subl", 0x12345678)
DEF_IMM(sbbl_i8, "sbbl", -128)
DEF_IMM(andl_i32, "andl", 0xf0f0f00f)
DEF_IMM(orl_i8, "orl", -2)
DEF_IMM(xorl_i32, "xorl", 0x80000001)
DEF_IMM(cmpl_i8, "cmpl", 1)
DEF_IMM(testl_i32, "testl", 0x00ff00ff)
static u32 addb_al(u32 a, u32 b, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "addb $0x85, %%al" FL_OUT : "+a"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 sbbw_ax(u32 a, u32 b, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "sbbw $0x1234, %%ax" FL_OUT : "+a"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 cmpl_eax(u32 a, u32 b, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "cmpl $0x7fffffff, %%eax" FL_OUT : "+a"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
  *fo = f; return a;
}

/* Locked read-modify-write forms. */
static u32 lock_add(u32 a, u32 b, u32 fi, u32 *fo) {
  u32 f; volatile u32 m = a;
  __asm__ volatile(FL_IN "lock addl %k[b], %[m]" FL_OUT : [m] "+m"(m), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *fo = f; return m;
}
static u32 lock_sbb16(u32 a, u32 b, u32 fi, u32 *fo) {
  u32 f; volatile u16 m = (u16)a;
  __asm__ volatile(FL_IN "lock sbbw %w[b], %[m]" FL_OUT : [m] "+m"(m), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *fo = f; return m;
}

static void run_bin(const char *name, binfn fn, u32 mask) {
  begin(name);
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), b = rnd_interesting(), fi = rflags(), fo;
    u32 r = fn(a, b, fi, &fo);
    rec(a, b, fi, r, 0, fo & mask);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* One-operand forms. */

#define DEF_UN(NAME, INS)                                                                  \
  static u32 NAME##32(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "l %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##16(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "w %w[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##8(u32 a, u32 b, u32 fi, u32 *fo) {                                     \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "b %b[a]" FL_OUT : [a] "+q"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##_m(u32 a, u32 b, u32 fi, u32 *fo) {                                    \
    u32 f; volatile u32 m = a;                                                             \
    __asm__ volatile(FL_IN INS "l %[m]" FL_OUT : [m] "+m"(m), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return m;                                                                     \
  }
DEF_UN(inc, "inc")
DEF_UN(dec, "dec")
DEF_UN(neg, "neg")
DEF_UN(not, "not")

/* ---------------------------------------------------------------------------------------- */
/* Multiply and divide. Results: (low, high). */

typedef void (*muldivfn)(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo);

static void mul32(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, d;
  __asm__ volatile(FL_IN "mull %[b]" FL_OUT : "+a"(a), "=&d"(d), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = d; *fo = f;
}
static void imul32(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, d;
  __asm__ volatile(FL_IN "imull %[b]" FL_OUT : "+a"(a), "=&d"(d), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = d; *fo = f;
}
static void mul16(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, d = 0xdeadbeef;
  __asm__ volatile(FL_IN "mulw %w[b]" FL_OUT : "+a"(a), "+d"(d), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = d; *fo = f;
}
static void imul16(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, d = 0xdeadbeef;
  __asm__ volatile(FL_IN "imulw %w[b]" FL_OUT : "+a"(a), "+d"(d), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = d; *fo = f;
}
static void mul8(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "mulb %b[b]" FL_OUT : "+a"(a), [fo] "=&r"(f) : [b] "q"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = 0; *fo = f;
}
static void imul8(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "imulb %b[b]" FL_OUT : "+a"(a), [fo] "=&r"(f) : [b] "q"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = 0; *fo = f;
}
static void imul2_32(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "imull %k[b], %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = 0; *fo = f;
}
static void imul2_16(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "imulw %w[b], %w[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = a; *hi = 0; *fo = f;
}
static void imul3_i8(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, r = 0x55555555;
  __asm__ volatile(FL_IN "imull $-7, %k[b], %k[r]" FL_OUT : [r] "+r"(r), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = r; *hi = 0; *fo = f;
}
static void imul3_i32(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, r = 0x55555555; volatile u32 m = b;
  __asm__ volatile(FL_IN "imull $0x12345, %[m], %k[r]" FL_OUT : [r] "+r"(r), [fo] "=&r"(f) : [m] "m"(m), [fi] "r"(fi) : "cc");
  *lo = r; *hi = 0; *fo = f;
}
static void imul3_16(u32 a, u32 b, u32 fi, u32 *lo, u32 *hi, u32 *fo) {
  u32 f, r = 0x55555555;
  __asm__ volatile(FL_IN "imulw $300, %w[b], %w[r]" FL_OUT : [r] "+r"(r), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *lo = r; *hi = 0; *fo = f;
}

static void run_muldiv(const char *name, muldivfn fn, u32 mask) {
  begin(name);
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), b = rnd_interesting(), fi = rflags(), lo, hi, fo;
    fn(a, b, fi, &lo, &hi, &fo);
    rec(a, b, fi, lo, hi, fo & mask);
  }
  end();
}

/* Divisions: operands are built so that the quotient fits (no #DE here; sys tests #DE). */
static u32 nz(u32 v) { return v ? v : 1; }

static void run_div(void) {
  u32 f, fi;
  begin("div32");
  for (int i = 0; i < CASES; i++) {
    u32 d = nz(rnd_interesting()), hi = rnd() % d, lo = rnd_interesting(), q = lo, r = hi;
    fi = rflags();
    __asm__ volatile(FL_IN "divl %[d]" FL_OUT : "+a"(q), "+d"(r), [fo] "=&r"(f) : [d] "r"(d), [fi] "r"(fi) : "cc");
    rec(lo, d, hi, q, r, 0);
  }
  end();
  begin("div16");
  for (int i = 0; i < CASES; i++) {
    u32 d = nz(rnd_interesting() & 0xffff), hi = (rnd() % d) | 0xabcd0000u, lo = rnd_interesting(), q = lo, r = hi;
    fi = rflags();
    __asm__ volatile(FL_IN "divw %w[d]" FL_OUT : "+a"(q), "+d"(r), [fo] "=&r"(f) : [d] "r"(d), [fi] "r"(fi) : "cc");
    rec(lo, d, hi, q, r, 0);
  }
  end();
  begin("div8");
  for (int i = 0; i < CASES; i++) {
    u32 d = nz(rnd_interesting() & 0xff), a = (rnd() & 0xffff00ffu) | ((rnd() % d) << 8), q = a;
    fi = rflags();
    __asm__ volatile(FL_IN "divb %b[d]" FL_OUT : "+a"(q), [fo] "=&r"(f) : [d] "q"(d), [fi] "r"(fi) : "cc");
    rec(a, d, 0, q, 0, 0);
  }
  end();
  begin("idiv32");
  for (int i = 0; i < CASES; i++) {
    s32 d = (s32)nz(rnd_interesting());
    s32 q = (s32)(rnd() % 0xfffffffdu) - 0x7fffffff;       /* -(2^31-1) .. 2^31-3 */
    u32 ad = d < 0 ? 0u - (u32)d : (u32)d;
    s32 r = (s32)(rnd() % ad);
    if (rnd() & 1) r = -r;
    s64 n = (s64)q * d + r;
    u32 lo = (u32)n, hi = (u32)((u64)n >> 32), x = lo, y = hi;
    fi = rflags();
    __asm__ volatile(FL_IN "idivl %[d]" FL_OUT : "+a"(x), "+d"(y), [fo] "=&r"(f) : [d] "r"(d), [fi] "r"(fi) : "cc");
    rec(lo, (u32)d, hi, x, y, 0);
  }
  end();
  begin("idiv16");
  for (int i = 0; i < CASES; i++) {
    s32 d = (s16)nz(rnd_interesting() & 0xffff);
    s32 q = (s32)(rnd() % 65533u) - 32767;
    u32 ad = d < 0 ? (u32)-d : (u32)d;
    s32 r = (s32)(rnd() % ad);
    if (rnd() & 1) r = -r;
    s32 n = q * d + r;
    u32 x = ((u32)n & 0xffff) | (rnd() & 0xffff0000u), y = ((u32)n >> 16) | 0x12340000u, lo = x, hi = y;
    fi = rflags();
    __asm__ volatile(FL_IN "idivw %w[d]" FL_OUT : "+a"(x), "+d"(y), [fo] "=&r"(f) : [d] "r"(d), [fi] "r"(fi) : "cc");
    rec(lo, (u32)d, hi, x, y, 0);
  }
  end();
  begin("idiv8");
  for (int i = 0; i < CASES; i++) {
    s32 d = (s8)nz(rnd_interesting() & 0xff);
    s32 q = (s32)(rnd() % 253u) - 127;
    u32 ad = d < 0 ? (u32)-d : (u32)d;
    s32 r = (s32)(rnd() % ad);
    if (rnd() & 1) r = -r;
    s32 n = q * d + r;
    u32 x = ((u32)n & 0xffff) | (rnd() & 0xffff0000u), lo = x;
    fi = rflags();
    __asm__ volatile(FL_IN "idivb %b[d]" FL_OUT : "+a"(x), [fo] "=&r"(f) : [d] "q"(d), [fi] "r"(fi) : "cc");
    rec(lo, (u32)d, 0, x, 0, 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Shifts and rotates, count in CL (any value: the CPU masks it to 5 bits), by 1 and by imm8. */

enum { K_SHL, K_SHR, K_SAR, K_ROL, K_ROR, K_RCL, K_RCR };

/* The flags the SDM defines after a shift/rotate of `bits` by `count` (CL value). */
static u32 shift_mask(int kind, int bits, u32 count) {
  u32 c = count & 31;
  if (c == 0) return ALLF;                        /* unaffected: equal to the input */
  u32 m;
  if (kind <= K_SAR) {
    m = CF | PF | ZF | SF | (c == 1 ? OF : 0);   /* AF undefined for nonzero counts */
    if (kind != K_SAR && c >= (u32)bits) m &= ~CF;  /* SHL/SHR: CF undefined past the width */
  } else {
    m = ALLF & ~(c == 1 ? 0 : OF);               /* rotates change only CF and OF */
  }
  return m;
}

typedef u32 (*shfn)(u32 a, u32 c, u32 fi, u32 *fo);

#define DEF_SH(NAME, INS)                                                                  \
  static u32 NAME##32(u32 a, u32 c, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "l %%cl, %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : "c"(c), [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##16(u32 a, u32 c, u32 fi, u32 *fo) {                                    \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "w %%cl, %w[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : "c"(c), [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##8(u32 a, u32 c, u32 fi, u32 *fo) {                                     \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "b %%cl, %b[a]" FL_OUT : [a] "+q"(a), [fo] "=&r"(f) : "c"(c), [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##1(u32 a, u32 c, u32 fi, u32 *fo) {                                     \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "l $1, %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }                                                                                        \
  static u32 NAME##_i(u32 a, u32 c, u32 fi, u32 *fo) {                                    \
    u32 f; volatile u32 m = a;                                                             \
    __asm__ volatile(FL_IN INS "l $13, %[m]" FL_OUT : [m] "+m"(m), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return m;                                                                     \
  }                                                                                        \
  static u32 NAME##8_1(u32 a, u32 c, u32 fi, u32 *fo) {                                   \
    u32 f;                                                                                 \
    __asm__ volatile(FL_IN INS "b $1, %b[a]" FL_OUT : [a] "+q"(a), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    *fo = f; return a;                                                                     \
  }
DEF_SH(shl, "shl")
DEF_SH(shr, "shr")
DEF_SH(sar, "sar")
DEF_SH(rol, "rol")
DEF_SH(ror, "ror")
DEF_SH(rcl, "rcl")
DEF_SH(rcr, "rcr")

/* A count with weight on the interesting values: 0, 1, the widths, and past them. */
static u32 rcount(void) {
  u32 r = rnd();
  switch ((r >> 29) & 7) {
    case 0: return 1;
    case 1: return 0;
    case 2: return (r >> 8) & 0xff;     /* masked by the CPU */
    default: return (r >> 8) % 34;
  }
}

static void run_sh(const char *name, shfn fn, int kind, int bits, int fixed) {
  begin(name);
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), c = fixed >= 0 ? (u32)fixed : rcount(), fi = rflags(), fo;
    /* Fixed counts: the CL register is still loaded but ignored. */
    u32 r = fn(a, fixed >= 0 ? rnd() : c, fi, &fo);
    rec(a, c, fi, r, 0, fo & shift_mask(kind, bits, c));
  }
  end();
}

/* SHLD/SHRD: count 0..31 (CL masked); 16-bit counts above 16 are undefined, not tested. */
static u32 shld32(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "shldl %%cl, %k[b], %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), "c"(c), [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 shrd32(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "shrdl %%cl, %k[b], %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), "c"(c), [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 shld16(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "shldw %%cl, %w[b], %w[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), "c"(c), [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 shrd16(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "shrdw %%cl, %w[b], %w[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), "c"(c), [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
static u32 shld_i(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f; volatile u32 m = a;
  __asm__ volatile(FL_IN "shldl $7, %k[b], %[m]" FL_OUT : [m] "+m"(m), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *fo = f; return m;
}
static u32 shrd_i(u32 a, u32 b, u32 c, u32 fi, u32 *fo) {
  u32 f;
  __asm__ volatile(FL_IN "shrdl $1, %k[b], %k[a]" FL_OUT : [a] "+r"(a), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc");
  *fo = f; return a;
}
typedef u32 (*dshfn)(u32 a, u32 b, u32 c, u32 fi, u32 *fo);

static void run_dsh(const char *name, dshfn fn, int bits, int fixed) {
  begin(name);
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), b = rnd_interesting(), fi = rflags(), fo;
    u32 c = fixed >= 0 ? (u32)fixed : rcount();
    if (bits == 16 && (c & 31) > 16) c = 16;
    u32 r = fn(a, b, c, fi, &fo);
    u32 cm = c & 31;
    u32 mask = cm == 0 ? ALLF : (CF | PF | ZF | SF | (cm == 1 ? OF : 0));
    rec(a, b, fi ^ (c << 16), r, 0, fo & mask);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Bit tests and scans. */

static u32 g_bits[64];

static void run_bt(void) {
  u32 f, fi, r;
#define BT_REG(NAME, INS)                                                                  \
  begin(NAME);                                                                             \
  for (int i = 0; i < CASES; i++) {                                                        \
    u32 a = rnd_interesting(), b = rnd(); r = a; fi = rflags();                            \
    __asm__ volatile(FL_IN INS "l %k[b], %k[a]" FL_OUT : [a] "+r"(r), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc"); \
    rec(a, b, fi, r, 0, f & (CF | ZF));                                                    \
    r = a;                                                                                 \
    __asm__ volatile(FL_IN INS "w %w[b], %w[a]" FL_OUT : [a] "+r"(r), [fo] "=&r"(f) : [b] "r"(b), [fi] "r"(fi) : "cc"); \
    rec(a, b, fi, r, 1, f & (CF | ZF));                                                    \
    r = a;                                                                                 \
    __asm__ volatile(FL_IN INS "l $35, %k[a]" FL_OUT : [a] "+r"(r), [fo] "=&r"(f) : [fi] "r"(fi) : "cc"); \
    rec(a, 35, fi, r, 2, f & (CF | ZF));                                                   \
  }                                                                                        \
  end();
  BT_REG("bt", "bt")
  BT_REG("bts", "bts")
  BT_REG("btr", "btr")
  BT_REG("btc", "btc")
  /* Bit-string forms: a register offset reaches beyond the addressed dword/word, either
   * side, and an immediate offset is taken modulo the operand width. */
#define BT_MEM(NAME, INS)                                                                  \
  begin(NAME);                                                                             \
  for (int i = 0; i < 64; i++) g_bits[i] = rnd();                                          \
  for (int i = 0; i < CASES; i++) {                                                        \
    s32 off = (s32)(rnd() % 1024u) - 512; fi = rflags();                                   \
    __asm__ volatile(FL_IN INS "l %k[b], %[m]" FL_OUT : [m] "+m"(g_bits[32]), [fo] "=&r"(f) : [b] "r"(off), [fi] "r"(fi) : "cc", "memory"); \
    rec((u32)off, 0, fi, 0, 0, f & (CF | ZF));                                             \
    s32 off16 = (s32)(rnd() % 512u) - 256;                                                 \
    __asm__ volatile(FL_IN INS "w %w[b], %[m]" FL_OUT : [m] "+m"(g_bits[32]), [fo] "=&r"(f) : [b] "r"(off16), [fi] "r"(fi) : "cc", "memory"); \
    rec((u32)off16, 1, fi, 0, 0, f & (CF | ZF));                                           \
    __asm__ volatile(FL_IN INS "l $45, %[m]" FL_OUT : [m] "+m"(g_bits[3]), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory"); \
    rec(45, 2, fi, 0, 0, f & (CF | ZF));                                                   \
  }                                                                                        \
  for (int i = 0; i < 64; i++) g_hash = fnv(g_hash, g_bits[i]);                           \
  end();
  BT_MEM("bt_mem", "bt")
  BT_MEM("bts_mem", "bts")
  BT_MEM("btr_mem", "btr")
  BT_MEM("btc_mem", "btc")

  begin("bsf_bsr");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting();
    if (i & 1) a &= rnd() & rnd() & rnd();    /* sparse */
    u32 r1 = 0x11111111, r2 = 0x22222222, r3 = 0x33333333, r4 = 0x44444444, f1, f2, f3, f4;
    fi = rflags();
    __asm__ volatile(FL_IN "bsfl %k[a], %k[r]" FL_OUT : [r] "+r"(r1), [fo] "=&r"(f1) : [a] "r"(a), [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "bsrl %k[a], %k[r]" FL_OUT : [r] "+r"(r2), [fo] "=&r"(f2) : [a] "r"(a), [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "bsfw %w[a], %w[r]" FL_OUT : [r] "+r"(r3), [fo] "=&r"(f3) : [a] "r"(a), [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "bsrw %w[a], %w[r]" FL_OUT : [r] "+r"(r4), [fo] "=&r"(f4) : [a] "r"(a), [fi] "r"(fi) : "cc");
    /* A zero source leaves the destination undefined: not recorded. */
    if (a == 0) r1 = r2 = 0;
    if ((a & 0xffff) == 0) r3 = r4 = 0;
    rec(a, 0, fi, r1, r2, f1 & ZF);
    rec(a, 1, fi, r3, r4, (f3 & ZF) | ((f2 & ZF) << 8) | ((f4 & ZF) << 16));
  }
  end();

  begin("bswap");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd(), x = a, y = ~a;
    __asm__ volatile("bswap %0\n\tbswap %1" : "+r"(x), "+r"(y));
    rec(a, 0, 0, x, y, 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Exchange and compare-exchange. */

static void run_xchg(void) {
  u32 f, fi;
  begin("xadd");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), b = rnd_interesting(), x = a, y = b; fi = rflags();
    __asm__ volatile(FL_IN "xaddl %k[y], %k[x]" FL_OUT : [x] "+r"(x), [y] "+r"(y), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
    rec(a, b, fi, x, y, f & ALLF);
    x = a; y = b;
    __asm__ volatile(FL_IN "xaddw %w[y], %w[x]" FL_OUT : [x] "+r"(x), [y] "+r"(y), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
    rec(a, b, fi, x, y, f & ALLF);
    x = a; y = b;
    __asm__ volatile(FL_IN "xaddb %b[y], %b[x]" FL_OUT : [x] "+q"(x), [y] "+q"(y), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
    rec(a, b, fi, x, y, f & ALLF);
    volatile u32 m = a; y = b;
    __asm__ volatile(FL_IN "lock xaddl %k[y], %[m]" FL_OUT : [m] "+m"(m), [y] "+r"(y), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");
    rec(a, b, fi, m, y, f & ALLF);
  }
  end();

  begin("xchg");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd(), b = rnd(), x = a, y = b;
    __asm__ volatile("xchgl %k0, %k1\n\txchgw %w0, %w1\n\txchgb %b0, %b1" : "+q"(x), "+q"(y));
    rec(a, b, 0, x, y, 0);
    volatile u32 m = a; y = b;
    __asm__ volatile("xchgl %k1, %0" : "+m"(m), "+r"(y));
    rec(a, b, 0, m, y, 0);
    x = a; y = b;
    __asm__ volatile("xchgb %h0, %b1" : "+Q"(x), "+Q"(y));
    rec(a, b, 0, x, y, 0);
  }
  end();

  begin("cmpxchg");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), b = rnd_interesting(), c = rnd();
    u32 acc = (rnd() & 1) ? a : b;               /* equal about half the time */
    u32 x = a, e = acc; fi = rflags();
    __asm__ volatile(FL_IN "cmpxchgl %k[c], %k[x]" FL_OUT : [x] "+r"(x), "+a"(e), [fo] "=&r"(f) : [c] "r"(c), [fi] "r"(fi) : "cc");
    rec(a, acc, fi, x, e, f & ALLF);
    x = a; e = acc;
    __asm__ volatile(FL_IN "cmpxchgw %w[c], %w[x]" FL_OUT : [x] "+r"(x), "+a"(e), [fo] "=&r"(f) : [c] "r"(c), [fi] "r"(fi) : "cc");
    rec(a, acc, fi, x, e, f & ALLF);
    x = a; e = acc;
    __asm__ volatile(FL_IN "cmpxchgb %b[c], %b[x]" FL_OUT : [x] "+q"(x), "+a"(e), [fo] "=&r"(f) : [c] "q"(c), [fi] "r"(fi) : "cc");
    rec(a, acc, fi, x, e, f & ALLF);
    volatile u32 m = a; e = acc;
    __asm__ volatile(FL_IN "lock cmpxchgl %k[c], %[m]" FL_OUT : [m] "+m"(m), "+a"(e), [fo] "=&r"(f) : [c] "r"(c), [fi] "r"(fi) : "cc");
    rec(a, acc, fi, m, e, f & ALLF);
  }
  end();

  begin("cmpxchg8b");
  for (int i = 0; i < CASES; i++) {
    volatile u64 m = ((u64)rnd() << 32) | rnd();
    u32 lo = (u32)m, hi = (u32)(m >> 32);
    u32 eax = lo, edx = hi;
    if (rnd() & 1) eax ^= 1u << (rnd() & 31);
    if ((rnd() & 3) == 0) edx ^= 1u << (rnd() & 31);
    u32 ebx = rnd(), ecx = rnd(), ea = eax, ed = edx; fi = rflags();
    __asm__ volatile(FL_IN "lock cmpxchg8b %[m]" FL_OUT
                     : [m] "+m"(m), "+a"(eax), "+d"(edx), [fo] "=&r"(f) : "b"(ebx), "c"(ecx), [fi] "r"(fi) : "cc");
    rec(ea, ed, fi, eax, edx, f & ALLF);
    rec(ebx, ecx, 0, (u32)m, (u32)(m >> 32), 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Condition codes: SETcc, CMOVcc, Jcc over all 16 conditions and random flags. */

#define CC_LIST(X) X(o) X(no) X(b) X(ae) X(e) X(ne) X(be) X(a) X(s) X(ns) X(p) X(np) X(l) X(ge) X(le) X(g)

static void run_cc(void) {
  u32 fi;
  begin("setcc");
  for (int i = 0; i < CASES; i++) {
    fi = rflags();
    u32 acc = 0, v;
#define SETCC(c) v = 0xffffff00u; __asm__ volatile(FL_IN "set" #c " %b[v]" : [v] "+q"(v) : [fi] "r"(fi) : "cc"); acc = acc * 3 + v;
    CC_LIST(SETCC)
    rec(fi, 0, fi, acc, 0, 0);
  }
  end();
  begin("cmovcc");
  for (int i = 0; i < CASES; i++) {
    fi = rflags();
    u32 acc = 0, v, s = rnd();
#define CMOVCC(c) v = 0x12345678u; __asm__ volatile(FL_IN "cmov" #c "l %k[s], %k[v]\n\tcmov" #c "w %w[s], %w[v]" : [v] "+r"(v) : [s] "r"(s), [fi] "r"(fi) : "cc"); acc = fnv(acc, v);
    CC_LIST(CMOVCC)
    rec(fi, s, fi, acc, 0, 0);
  }
  end();
  begin("jcc");
  for (int i = 0; i < CASES; i++) {
    fi = rflags();
    u32 acc = 0, v;
#define JCC(c) __asm__ volatile(FL_IN "j" #c " 1f\n\tmovl $5, %[v]\n\tjmp 2f\n1:\tmovl $7, %[v]\n2:" : [v] "=r"(v) : [fi] "r"(fi) : "cc"); acc = acc * 3 + v;
    CC_LIST(JCC)
    rec(fi, 0, fi, acc, 0, 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Decimal adjust and ASCII adjust. */

static void run_bcd(void) {
  u32 f, fi;
#define BCD(NAME, INS, MASK)                                                               \
  begin(NAME);                                                                             \
  for (int i = 0; i < CASES; i++) {                                                        \
    u32 a = rnd(), x = a; fi = rflags();                                                   \
    __asm__ volatile(FL_IN INS FL_OUT : "+a"(x), [fo] "=&r"(f) : [fi] "r"(fi) : "cc");    \
    rec(a, 0, fi, x, 0, f & (MASK));                                                       \
  }                                                                                        \
  end();
  BCD("daa", "daa", ALLF & ~OF)
  BCD("das", "das", ALLF & ~OF)
  BCD("aaa", "aaa", AF | CF)
  BCD("aas", "aas", AF | CF)
  BCD("aam10", "aam", SF | ZF | PF)
  BCD("aam16", ".byte 0xd4, 16", SF | ZF | PF)
  BCD("aam7", ".byte 0xd4, 7", SF | ZF | PF)
  BCD("aad10", "aad", SF | ZF | PF)
  BCD("aad3", ".byte 0xd5, 3", SF | ZF | PF)
  BCD("aad0", ".byte 0xd5, 0", SF | ZF | PF)
}

/* ---------------------------------------------------------------------------------------- */
/* Sign/zero extension, LEA, XLAT, LOOP, flags transfer, ENTER/LEAVE. */

static u8 xlat_table[256];

static void run_misc(void) {
  u32 f, fi;
  begin("cbw_cwd");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), x = a, d = 0x5a5a5a5a;
    __asm__ volatile("cbtw" : "+a"(x)); rec(a, 0, 0, x, 0, 0);
    x = a; __asm__ volatile("cwtl" : "+a"(x)); rec(a, 1, 0, x, 0, 0);
    x = a; __asm__ volatile("cwtd" : "+a"(x), "+d"(d)); rec(a, 2, 0, x, d, 0);
    x = a; __asm__ volatile("cltd" : "+a"(x), "=d"(d)); rec(a, 3, 0, x, d, 0);
  }
  end();
  begin("movsx_movzx");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd_interesting(), r1, r2, r3, r4, r5 = 0x99999999, r6 = 0x99999999;
    volatile u16 m = (u16)(a >> 8);
    __asm__ volatile("movsbl %b1, %0" : "=r"(r1) : "q"(a));
    __asm__ volatile("movswl %w1, %0" : "=r"(r2) : "r"(a));
    __asm__ volatile("movzbl %b1, %0" : "=r"(r3) : "q"(a));
    __asm__ volatile("movzwl %1, %0" : "=r"(r4) : "m"(m));
    __asm__ volatile("movsbw %b1, %w0" : "+r"(r5) : "q"(a));
    __asm__ volatile("movzbw %h1, %w0" : "+r"(r6) : "Q"(a));
    rec(a, 0, 0, r1, r2, 0);
    rec(a, 1, 0, r3, r4, 0);
    rec(a, 2, 0, r5, r6, 0);
  }
  end();
  begin("lea");
  for (int i = 0; i < CASES; i++) {
    u32 b = rnd_interesting(), x = rnd_interesting(), r1, r2, r3, r4, r5 = 0x77777777, r6 = 0x77777777;
    __asm__ volatile("leal 0x12345678(%1,%2,4), %0" : "=r"(r1) : "r"(b), "r"(x));
    __asm__ volatile("leal -8(%1,%2,8), %0" : "=r"(r2) : "r"(b), "r"(x));
    __asm__ volatile("leal 0x40(,%1,2), %0" : "=r"(r3) : "r"(x));
    __asm__ volatile("leal -0x80(%1), %0" : "=r"(r4) : "r"(b));
    __asm__ volatile("leaw 0x7fff(%1,%2,1), %w0" : "+r"(r5) : "r"(b), "r"(x));
    /* 16-bit addressing: BX+SI+disp16 wraps at 64 KiB. */
    __asm__ volatile("addr16 leal 0x9abc(%%bx,%%si), %0" : "=r"(r6) : "b"(b), "S"(x));
    rec(b, x, 0, r1, r2, 0);
    rec(b, x, 1, r3, r4, 0);
    rec(b, x, 2, r5, r6, 0);
  }
  end();
  begin("xlat");
  for (int i = 0; i < 256; i++) xlat_table[i] = (u8)(rnd() >> 24);
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd(), x = a;
    __asm__ volatile("xlatb" : "+a"(x) : "b"(xlat_table));
    rec(a, 0, 0, x, 0, 0);
  }
  end();
  begin("loop");
  for (int i = 0; i < CASES; i++) {
    u32 n = rnd() % 40, k = rnd() % 48, c1 = n, c2 = n, c3 = n, c4 = n, acc1 = 0, acc2 = 0, acc3 = 0, acc4 = 0;
    /* LOOP with ECX=0 runs 2^32 times: start at 1 at least. */
    if (c1 == 0) c1 = c2 = 1;
    __asm__ volatile("1: addl %%ecx, %0\n\tloop 1b" : "+r"(acc1), "+c"(c1) : : "cc");
    __asm__ volatile("1: addl $1, %0\n\tcmpl %2, %%ecx\n\tloopne 1b\n\tjnz 2f\n\taddl $1000, %0\n2:" : "+r"(acc2), "+c"(c2) : "r"(k) : "cc");
    __asm__ volatile("jecxz 2f\n1: addl $3, %0\n\tcmpl %2, %%ecx\n\tloope 1b\n2:" : "+r"(acc3), "+c"(c3) : "r"(n - (k & 1)) : "cc");
    __asm__ volatile("jecxz 1f\n\taddl $1, %0\n1:" : "+r"(acc4), "+c"(c4) : : "cc");
    rec(n, k, 0, acc1 ^ (c1 << 16), acc2 ^ (c2 << 16), 0);
    rec(n, k, 1, acc3 ^ (c3 << 16), acc4 ^ (c4 << 16), 0);
  }
  end();
  begin("lahf_sahf");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd(), x = a; fi = rflags();
    __asm__ volatile(FL_IN "sahf" FL_OUT : [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc");
    rec(a, 0, fi, f & (ALLF | 0x2), 0, 0);
    __asm__ volatile(FL_IN "lahf" : "+a"(x) : [fi] "r"(fi) : "cc");
    rec(a, 1, fi, x, 0, 0);
  }
  end();
  begin("flagops");
  for (int i = 0; i < CASES; i++) {
    u32 f1, f2, f3, f4, f5; fi = rflags();
    __asm__ volatile(FL_IN "cmc" FL_OUT : [fo] "=&r"(f1) : [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "stc" FL_OUT : [fo] "=&r"(f2) : [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "clc" FL_OUT : [fo] "=&r"(f3) : [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "std\n\tpushfl\n\tpopl %[fo]\n\tcld" : [fo] "=&r"(f4) : [fi] "r"(fi) : "cc");
    __asm__ volatile(FL_IN "cld" FL_OUT : [fo] "=&r"(f5) : [fi] "r"(fi) : "cc");
    rec(fi, 0, 0, f1, f2, f3);
    rec(fi, 1, 0, f4, f5, 0);
  }
  end();
  /* POPF at CPL 0 (IOPL 0 at entry): every bit but TF and IF, which would let a trap or an
   * interrupt in. Reserved bits read back fixed; RF, VM, VIF, VIP are not loaded by POPF. */
  begin("popf_pushf");
  for (int i = 0; i < CASES; i++) {
    u32 v = rnd() & ~0x300u, saved, out;
    __asm__ volatile("pushfl\n\tpopl %[s]\n\tpushl %[v]\n\tpopfl\n\tpushfl\n\tpopl %[o]\n\tpushl %[s]\n\tpopfl"
                     : [s] "=&r"(saved), [o] "=&r"(out) : [v] "r"(v) : "cc");
    rec(v, 0, 0, out, 0, 0);
    __asm__ volatile("pushfl\n\tpopl %[s]\n\tpushw %w[v]\n\tpopfw\n\tpushfw\n\tpopw %w[o]\n\tpushl %[s]\n\tpopfl"
                     : [s] "=&r"(saved), [o] "=&r"(out) : [v] "r"(v) : "cc");
    rec(v, 1, 0, out & 0xffff, 0, 0);
  }
  end();
}

/* ENTER/LEAVE with nesting levels, on a scratch stack (see isa_asm.S). */
extern u32 enter_scratch[128];
extern u32 enter_result[4];
void enter_test0(u32 ebp);
void enter_test1(u32 ebp);
void enter_test3(u32 ebp);
void enter_test31(u32 ebp);

static void run_enter(void) {
  static void (*const fns[4])(u32) = { enter_test0, enter_test1, enter_test3, enter_test31 };
  begin("enter_leave");
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < 128; i++) enter_scratch[i] = 0xcc000000u + (u32)i;
    u32 ebp = (u32)&enter_scratch[40];
    /* The outer frame pointers ENTER copies: a chain inside the scratch area. */
    enter_scratch[40] = (u32)&enter_scratch[44];
    enter_scratch[39] = 0xf1f1f1f1u;
    enter_scratch[38] = 0xf2f2f2f2u;
    fns[k](ebp);
    u32 base = (u32)enter_scratch;
    for (int i = 0; i < 128; i++) g_hash = fnv(g_hash, enter_scratch[i]);
    rec(k, 0, 0, enter_result[0] - base, enter_result[1] - base, 0);
    rec(k, 1, 0, enter_result[2] - base, enter_result[3] - base, 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* String instructions, with and without REP, both directions, all widths. */

static u8 sbuf[512], dbuf[512];

static void fill_bufs(void) {
  for (int i = 0; i < 512; i++) { sbuf[i] = (u8)(rnd() >> 24); dbuf[i] = (u8)(rnd() >> 24); }
  /* Make matches likely for CMPS/SCAS. */
  for (int i = 0; i < 512; i++) if (rnd() & 1) dbuf[i] = sbuf[i];
}

static void hash_bufs(void) {
  for (int i = 0; i < 512; i += 4) g_hash = fnv(g_hash, *(u32 *)&dbuf[i]);
}

static void run_string(void) {
  u32 f, fi;
  begin("rep_movs");
  fill_bufs();
  for (int i = 0; i < CASES / 4; i++) {
    u32 n = rnd() % 48, so = 128 + rnd() % 192, d_o = 128 + rnd() % 192, w = rnd() % 3, back = rnd() & 1;
    u32 si = (u32)sbuf + so, di = (u32)dbuf + d_o, c = n;
    if (back) __asm__ volatile("std");
    if (w == 0) __asm__ volatile("rep movsb" : "+S"(si), "+D"(di), "+c"(c) : : "memory");
    else if (w == 1) __asm__ volatile("rep movsw" : "+S"(si), "+D"(di), "+c"(c) : : "memory");
    else __asm__ volatile("rep movsl" : "+S"(si), "+D"(di), "+c"(c) : : "memory");
    __asm__ volatile("cld");
    rec(n, w | back << 4, 0, si - (u32)sbuf, di - (u32)dbuf, c);
  }
  hash_bufs();
  end();
  begin("rep_stos");
  for (int i = 0; i < CASES / 4; i++) {
    u32 n = rnd() % 48, d_o = 128 + rnd() % 192, w = rnd() % 3, back = rnd() & 1, v = rnd();
    u32 di = (u32)dbuf + d_o, c = n;
    if (back) __asm__ volatile("std");
    if (w == 0) __asm__ volatile("rep stosb" : "+D"(di), "+c"(c) : "a"(v) : "memory");
    else if (w == 1) __asm__ volatile("rep stosw" : "+D"(di), "+c"(c) : "a"(v) : "memory");
    else __asm__ volatile("rep stosl" : "+D"(di), "+c"(c) : "a"(v) : "memory");
    __asm__ volatile("cld");
    rec(n, w | back << 4, 0, di - (u32)dbuf, c, 0);
  }
  hash_bufs();
  end();
  begin("lods");
  for (int i = 0; i < CASES / 4; i++) {
    u32 so = 128 + rnd() % 192, back = rnd() & 1, si = (u32)sbuf + so, a = 0x87654321u;
    if (back) __asm__ volatile("std");
    __asm__ volatile("lodsb\n\tlodsw\n\tlodsl\n\tlodsw" : "+S"(si), "+a"(a) : : "memory");
    __asm__ volatile("cld");
    rec(so, back, 0, si - (u32)sbuf, a, 0);
  }
  end();
  begin("rep_cmps");
  fill_bufs();
  for (int i = 0; i < CASES / 2; i++) {
    u32 n = rnd() % 24, o = 128 + rnd() % 192, w = rnd() % 3, back = rnd() & 1, ne = rnd() & 1;
    u32 si = (u32)sbuf + o, di = (u32)dbuf + o, c = n;
    fi = rflags() | (back ? DF : 0);
    if (ne) {
      if (w == 0) __asm__ volatile(FL_IN "repne cmpsb" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
      else if (w == 1) __asm__ volatile(FL_IN "repne cmpsw" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
      else __asm__ volatile(FL_IN "repne cmpsl" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
    } else {
      if (w == 0) __asm__ volatile(FL_IN "repe cmpsb" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
      else if (w == 1) __asm__ volatile(FL_IN "repe cmpsw" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
      else __asm__ volatile(FL_IN "repe cmpsl" FL_OUT : "+S"(si), "+D"(di), "+c"(c), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
    }
    __asm__ volatile("cld");
    rec(n, w | back << 4 | ne << 8, fi, si - (u32)sbuf, (di - (u32)dbuf) | c << 16, f & ALLF);
  }
  end();
  begin("rep_scas");
  for (int i = 0; i < CASES / 2; i++) {
    u32 n = rnd() % 40, o = 128 + rnd() % 192, w = rnd() % 3, back = rnd() & 1, ne = rnd() & 1;
    u32 di = (u32)dbuf + o, c = n, a = dbuf[o + 5 + rnd() % 8] * 0x01010101u;
    if (rnd() & 1) a = *(u32 *)&dbuf[o];
    fi = rflags() | (back ? DF : 0);
    if (ne) {
      if (w == 0) __asm__ volatile(FL_IN "repne scasb" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
      else if (w == 1) __asm__ volatile(FL_IN "repne scasw" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
      else __asm__ volatile(FL_IN "repne scasl" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
    } else {
      if (w == 0) __asm__ volatile(FL_IN "repe scasb" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
      else if (w == 1) __asm__ volatile(FL_IN "repe scasw" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
      else __asm__ volatile(FL_IN "repe scasl" FL_OUT : "+D"(di), "+c"(c), [fo] "=&r"(f) : "a"(a), [fi] "r"(fi) : "cc", "memory");
    }
    __asm__ volatile("cld");
    rec(n, w | back << 4 | ne << 8, fi, di - (u32)dbuf, c, f & ALLF);
  }
  end();
  begin("movs_cmps_1");
  /* Single (non-REP) string instructions, including a segment override on the source. */
  for (int i = 0; i < CASES / 4; i++) {
    u32 o = 128 + rnd() % 192, si = (u32)sbuf + o, di = (u32)dbuf + o; fi = rflags();
    __asm__ volatile(FL_IN "movsl\n\tmovsb\n\tmovsw %%ss:(%%esi), %%es:(%%edi)\n\tcmpsb\n\tcmpsl" FL_OUT
                     : "+S"(si), "+D"(di), [fo] "=&r"(f) : [fi] "r"(fi) : "cc", "memory");
    rec(o, 0, fi, si - (u32)sbuf, di - (u32)dbuf, f & ALLF);
  }
  hash_bufs();
  end();
}

/* ---------------------------------------------------------------------------------------- */
/* Stack operations. */

u32 pa_regs[16];

static void run_stack(void) {
  begin("push_pop");
  for (int i = 0; i < CASES; i++) {
    u32 a = rnd(), b = rnd(), r1, r2, r3 = 0xabababab, sp1, sp2;
    __asm__ volatile("movl %%esp, %[sp1]\n\t"
                     "pushl %[a]\n\tpushw %w[b]\n\tpushl $-5\n\tpushw $0x1234\n\t"
                     "popl %[r1]\n\tpopl %[r2]\n\tpopw %w[r3]\n\t"
                     "movl %%esp, %[sp2]\n\tpopw %w[a]"
                     : [r1] "=&r"(r1), [r2] "=&r"(r2), [r3] "+r"(r3), [sp1] "=&r"(sp1), [sp2] "=&r"(sp2), [a] "+r"(a)
                     : [b] "r"(b) : "memory");
    rec(a, b, 0, r1, r2, r3 ^ (sp1 - sp2));
  }
  end();
  begin("pusha_popa");
  {
    /* PUSHA's image of a known register file, copied out through absolute addresses. */
    __asm__ volatile("pushal\n\t"
                     "movl $0x11111111, %%eax\n\tmovl $0x22222222, %%ecx\n\tmovl $0x33333333, %%edx\n\t"
                     "movl $0x44444444, %%ebx\n\tmovl $0x66666666, %%ebp\n\tmovl $0x77777777, %%esi\n\tmovl $0x88888888, %%edi\n\t"
                     "pushal\n\t"
                     "movl 0(%%esp), %%eax\n\tmovl %%eax, pa_regs+0\n\tmovl 4(%%esp), %%eax\n\tmovl %%eax, pa_regs+4\n\t"
                     "movl 8(%%esp), %%eax\n\tmovl %%eax, pa_regs+8\n\tmovl 12(%%esp), %%eax\n\tsubl %%esp, %%eax\n\tmovl %%eax, pa_regs+12\n\t"
                     "movl 16(%%esp), %%eax\n\tmovl %%eax, pa_regs+16\n\tmovl 20(%%esp), %%eax\n\tmovl %%eax, pa_regs+20\n\t"
                     "movl 24(%%esp), %%eax\n\tmovl %%eax, pa_regs+24\n\tmovl 28(%%esp), %%eax\n\tmovl %%eax, pa_regs+28\n\t"
                     "popal\n\t"
                     "movl %%eax, pa_regs+32\n\tmovl %%ecx, pa_regs+36\n\tmovl %%edx, pa_regs+40\n\tmovl %%ebx, pa_regs+44\n\t"
                     "movl %%ebp, pa_regs+48\n\tmovl %%esi, pa_regs+52\n\tmovl %%edi, pa_regs+56\n\t"
                     "popal"
                     : : : "memory");
    for (int i = 0; i < 15; i++) rec(i, 0, 0, pa_regs[i], 0, 0);
  }
  end();
}

/* ---------------------------------------------------------------------------------------- */

static void run_cpuid(void) {
  u32 a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0));
  char v[13];
  memcpy(v, &b, 4); memcpy(v + 4, &d, 4); memcpy(v + 8, &c, 4); v[12] = 0;
  puts("cpuid.0 vendor "); puts(v); puts("\n");
  /* EFLAGS.ID toggles on a CPU with CPUID. */
  u32 f1, f2;
  __asm__ volatile("pushfl\n\tpopl %0\n\tmovl %0, %1\n\txorl $0x200000, %1\n\tpushl %1\n\tpopfl\n\tpushfl\n\tpopl %1\n\tpushl %0\n\tpopfl"
                   : "=&r"(f1), "=&r"(f2) : : "cc");
  puts("eflags.id toggles "); puts(((f1 ^ f2) & 0x200000) ? "yes\n" : "no\n");
}

u32 kmain(u32 magic, void *mbi) {
  puts("isa self-test\n");
  run_cpuid();
  struct { const char *n; binfn f; u32 m; } bins[] = {
    { "add32", add32, ALLF }, { "add16", add16, ALLF }, { "add8", add8, ALLF }, { "add8h", add8h, ALLF },
    { "add_mr", add_mr, ALLF }, { "add_rm", add_rm, ALLF },
    { "adc32", adc32, ALLF }, { "adc16", adc16, ALLF }, { "adc8", adc8, ALLF }, { "adc8h", adc8h, ALLF },
    { "adc_mr", adc_mr, ALLF }, { "adc_rm", adc_rm, ALLF },
    { "sub32", sub32, ALLF }, { "sub16", sub16, ALLF }, { "sub8", sub8, ALLF }, { "sub8h", sub8h, ALLF },
    { "sub_mr", sub_mr, ALLF }, { "sub_rm", sub_rm, ALLF },
    { "sbb32", sbb32, ALLF }, { "sbb16", sbb16, ALLF }, { "sbb8", sbb8, ALLF }, { "sbb8h", sbb8h, ALLF },
    { "sbb_mr", sbb_mr, ALLF }, { "sbb_rm", sbb_rm, ALLF },
    { "cmp32", cmp32, ALLF }, { "cmp16", cmp16, ALLF }, { "cmp8", cmp8, ALLF }, { "cmp8h", cmp8h, ALLF },
    { "cmp_mr", cmp_mr, ALLF }, { "cmp_rm", cmp_rm, ALLF },
    { "and32", and32, ALLF & ~AF }, { "and16", and16, ALLF & ~AF }, { "and8", and8, ALLF & ~AF },
    { "and8h", and8h, ALLF & ~AF }, { "and_mr", and_mr, ALLF & ~AF }, { "and_rm", and_rm, ALLF & ~AF },
    { "or32", or32, ALLF & ~AF }, { "or16", or16, ALLF & ~AF }, { "or8", or8, ALLF & ~AF },
    { "or8h", or8h, ALLF & ~AF }, { "or_mr", or_mr, ALLF & ~AF }, { "or_rm", or_rm, ALLF & ~AF },
    { "xor32", xor32, ALLF & ~AF }, { "xor16", xor16, ALLF & ~AF }, { "xor8", xor8, ALLF & ~AF },
    { "xor8h", xor8h, ALLF & ~AF }, { "xor_mr", xor_mr, ALLF & ~AF }, { "xor_rm", xor_rm, ALLF & ~AF },
    { "test32", test32, ALLF & ~AF }, { "test16", test16, ALLF & ~AF }, { "test8", test8, ALLF & ~AF },
    { "test8h", test8h, ALLF & ~AF }, { "test_mr", test_mr, ALLF & ~AF }, { "test_rm", test_rm, ALLF & ~AF },
    { "add_i8", addl_i8, ALLF }, { "adc_i8", adcl_i8, ALLF }, { "sub_i32", subl_i32, ALLF },
    { "sbb_i8", sbbl_i8, ALLF }, { "and_i32", andl_i32, ALLF & ~AF }, { "or_i8", orl_i8, ALLF & ~AF },
    { "xor_i32", xorl_i32, ALLF & ~AF }, { "cmp_i8", cmpl_i8, ALLF }, { "test_i32", testl_i32, ALLF & ~AF },
    { "add_al", addb_al, ALLF }, { "sbb_ax", sbbw_ax, ALLF }, { "cmp_eax", cmpl_eax, ALLF },
    { "lock_add", lock_add, ALLF }, { "lock_sbb16", lock_sbb16, ALLF },
    { "inc32", inc32, ALLF }, { "inc16", inc16, ALLF }, { "inc8", inc8, ALLF }, { "inc_m", inc_m, ALLF },
    { "dec32", dec32, ALLF }, { "dec16", dec16, ALLF }, { "dec8", dec8, ALLF }, { "dec_m", dec_m, ALLF },
    { "neg32", neg32, ALLF }, { "neg16", neg16, ALLF }, { "neg8", neg8, ALLF }, { "neg_m", neg_m, ALLF },
    { "not32", not32, ALLF }, { "not16", not16, ALLF }, { "not8", not8, ALLF }, { "not_m", not_m, ALLF },
  };
  for (unsigned i = 0; i < sizeof bins / sizeof bins[0]; i++) run_bin(bins[i].n, bins[i].f, bins[i].m);

  struct { const char *n; muldivfn f; } muls[] = {
    { "mul32", mul32 }, { "imul32", imul32 }, { "mul16", mul16 }, { "imul16", imul16 },
    { "mul8", mul8 }, { "imul8", imul8 }, { "imul2_32", imul2_32 }, { "imul2_16", imul2_16 },
    { "imul3_i8", imul3_i8 }, { "imul3_i32", imul3_i32 }, { "imul3_16", imul3_16 },
  };
  for (unsigned i = 0; i < sizeof muls / sizeof muls[0]; i++) run_muldiv(muls[i].n, muls[i].f, CF | OF);
  run_div();

  struct { const char *n; shfn f; int kind, bits, fixed; } shs[] = {
#define SHROW(N, K) { #N "32", N##32, K, 32, -1 }, { #N "16", N##16, K, 16, -1 }, { #N "8", N##8, K, 8, -1 }, \
    { #N "_1", N##1, K, 32, 1 }, { #N "_i13", N##_i, K, 32, 13 }, { #N "8_1", N##8_1, K, 8, 1 },
    SHROW(shl, K_SHL) SHROW(shr, K_SHR) SHROW(sar, K_SAR) SHROW(rol, K_ROL) SHROW(ror, K_ROR)
    SHROW(rcl, K_RCL) SHROW(rcr, K_RCR)
  };
  for (unsigned i = 0; i < sizeof shs / sizeof shs[0]; i++) run_sh(shs[i].n, shs[i].f, shs[i].kind, shs[i].bits, shs[i].fixed);
  run_dsh("shld32", shld32, 32, -1);
  run_dsh("shrd32", shrd32, 32, -1);
  run_dsh("shld16", shld16, 16, -1);
  run_dsh("shrd16", shrd16, 16, -1);
  run_dsh("shld_i7", shld_i, 32, 7);
  run_dsh("shrd_i1", shrd_i, 32, 1);

  run_bt();
  run_xchg();
  run_cc();
  run_bcd();
  run_misc();
  run_enter();
  run_string();
  run_stack();
  puts("isa done\n");
  return 0x11;
}
