/* Freestanding support for the test guests: port I/O, console output, hashing, a PRNG. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;

#define MB_BOOT_MAGIC 0x2BADB002u

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* Console: port 0xE9 (QEMU debugcon / Bochs port E9). */
void putc_e9(char c);
void puts(const char *s);
void puthex(u32 v);          /* 8 hex digits */
void puthex_n(u32 v, int n); /* n hex digits */
void putdec(u32 v);
void putsdec(s32 v);
/* COM1 output, polling THRE (a UART that is absent reads 0xFF and passes the poll). */
void serial_init(void);
void serial_puts(const char *s);

/* isa-debug-exit: QEMU exits with status (code << 1) | 1. */
__attribute__((noreturn)) void exit_qemu(u32 code);

/* Fixed-seed linear congruential generator (Numerical Recipes constants). */
extern u32 lcg_state;
static inline u32 rnd(void) { lcg_state = lcg_state * 1664525u + 1013904223u; return lcg_state; }
/* A value with a bias towards edge cases (0, 1, -1, sign bits, small numbers). */
u32 rnd_interesting(void);

/* FNV-1a over 32-bit words. */
static inline u32 fnv(u32 h, u32 v) {
  for (int i = 0; i < 4; i++) { h ^= (v >> (8 * i)) & 0xff; h *= 16777619u; }
  return h;
}
#define FNV_INIT 2166136261u

void *memset(void *d, int c, unsigned n);
void *memcpy(void *d, const void *s, unsigned n);

#endif
