/* sse: prints the address of an SSE instruction (MOVAPS xmm0, xmm1) and executes it, with
 * no IDT of its own. On QEMU (CR4.OSFXSR clear) it raises #UD, which cannot be delivered
 * through the boot loader's IDT: a triple fault. virtlab implements no SSE and must stop
 * with a clear message naming the address and the instruction. */
#include "lib.h"

extern const char sse_insn[];

u32 kmain(u32 magic, void *mbi) {
  puts("sse: movaps at "); puthex((u32)sse_insn); putc_e9('\n');
  __asm__ volatile(".globl sse_insn\nsse_insn:\n\tmovaps %%xmm1, %%xmm0" : : : "memory");
  puts("still running after movaps\n");
  return 0x55;
}
