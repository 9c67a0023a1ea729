/* triple: loads an empty IDT (limit 0) and divides by zero. #DE cannot be delivered (#GP),
 * nor can that (#DF), so the CPU shuts down: a triple fault. QEMU with -no-reboot exits
 * with status 0; virtlab must stop with a triple fault. */
#include "lib.h"

struct dtr { u16 limit; u32 base; } __attribute__((packed));

u32 kmain(u32 magic, void *mbi) {
  puts("triple: loading an empty IDT, then dividing by zero\n");
  static const struct dtr empty = { 0, 0 };
  __asm__ volatile("lidt %0" : : "m"(empty));
  u32 z = 0, q = 1;
  __asm__ volatile("xorl %%edx, %%edx\n\tdivl %1" : "+a"(q) : "r"(z) : "edx", "cc", "memory");
  puts("still running: the divide did not fault\n");
  return 0x44;
}
