#include "lib.h"

u32 lcg_state = 12345;

void putc_e9(char c) { outb(0xE9, (u8)c); }

void puts(const char *s) { while (*s) putc_e9(*s++); }

void puthex_n(u32 v, int n) {
  static const char digits[] = "0123456789abcdef";
  for (int i = n - 1; i >= 0; i--) putc_e9(digits[(v >> (4 * i)) & 15]);
}

void puthex(u32 v) { puthex_n(v, 8); }

void putdec(u32 v) {
  char buf[12];
  int i = 0;
  do { buf[i++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (i) putc_e9(buf[--i]);
}

void putsdec(s32 v) {
  if (v < 0) { putc_e9('-'); putdec(0u - (u32)v); } else putdec((u32)v);
}

#define COM1 0x3F8
void serial_init(void) {
  outb(COM1 + 1, 0x00);  /* no interrupts */
  outb(COM1 + 3, 0x80);  /* DLAB */
  outb(COM1 + 0, 0x01);  /* 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03);  /* 8N1 */
  outb(COM1 + 2, 0xC7);  /* FIFO on */
  outb(COM1 + 4, 0x03);  /* DTR, RTS */
}

void serial_puts(const char *s) {
  while (*s) {
    while ((inb(COM1 + 5) & 0x20) == 0) { }
    outb(COM1, (u8)*s++);
  }
}

void exit_qemu(u32 code) {
  outl(0xF4, code);
  for (;;) __asm__ volatile("cli; hlt");
}

u32 rnd_interesting(void) {
  u32 r = rnd();
  switch ((r >> 28) & 15) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 0xffffffffu;
    case 3: return 0x80000000u;
    case 4: return 0x7fffffffu;
    case 5: return (rnd() >> 24) & 0xff;                 /* small */
    case 6: return 0x80u << ((rnd() >> 27) & 3) * 8 >> 0; /* sign bits of narrower sizes */
    case 7: return 0x7f7f7f7fu ^ (rnd() & 0x01010101u);
    default: return rnd();
  }
}

void *memset(void *d, int c, unsigned n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}

void *memcpy(void *d, const void *s, unsigned n) {
  u8 *p = d;
  const u8 *q = s;
  while (n--) *p++ = *q++;
  return d;
}
