/* compute: a CPU- and memory-bound workload for the benchmark. Each round fills a 64 KiB
 * buffer from an LCG, runs a sieve of Eratosthenes over 64 Ki numbers, and folds both into
 * a checksum. ROUNDS sets the size (the benchmark build runs ~150 M instructions, the test
 * build a few million). */
#include "lib.h"

#ifndef ROUNDS
#define ROUNDS 2
#endif
#define N 65536

static u8 sieve[N];
static u32 buf[N / 4];

static u32 round_(u32 seed) {
  u32 x = seed;
  for (u32 i = 0; i < N / 4; i++) { x = x * 1103515245u + 12345u; buf[i] = x; }
  for (u32 i = 0; i < N; i++) sieve[i] = 1;
  sieve[0] = sieve[1] = 0;
  for (u32 i = 2; i * i < N; i++)
    if (sieve[i])
      for (u32 j = i * i; j < N; j += i) sieve[j] = 0;
  u32 h = seed, primes = 0;
  for (u32 i = 0; i < N; i++) {
    primes += sieve[i];
    h = (h ^ buf[(i * 7) & (N / 4 - 1)]) * 16777619u + sieve[i];
  }
  return h ^ primes;
}

static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return (u64)hi << 32 | lo; }

u32 kmain(u32 magic, void *mbi) {
  puts("compute: "); putdec(ROUNDS); puts(" rounds\n");
#ifdef PROBE
  u64 t0 = rdtsc();
#endif
  u32 h = 0;
  for (u32 r = 0; r < ROUNDS; r++) h = round_(h + r);
  puts("checksum "); puthex(h); putc_e9('\n');
#ifdef PROBE
  /* Under QEMU -icount shift=0 the TSC counts instructions: for calibration only. */
  u64 t = rdtsc() - t0;
  puts("tsc delta "); putdec((u32)t); putc_e9('\n');
#endif
  return 0x33;
}
