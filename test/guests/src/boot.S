/* Multiboot v1 header and entry: set a stack, call kmain(magic, info), exit with its result. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003   /* page-align modules, want memory info */

  .section .multiboot, "a"
  .align 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

  .section .text.entry, "ax"
  .globl _start
_start:
  mov $boot_stack_top, %esp
  push %ebx               /* multiboot info pointer */
  push %eax               /* multiboot magic */
  cld
  call kmain
  /* kmain returned: exit with its value through isa-debug-exit. */
  mov $0xf4, %dx
  outl %eax, %dx
1: cli
  hlt
  jmp 1b

  .section .bss
  .align 16
boot_stack:
  .space 16384
  .globl boot_stack_top
boot_stack_top:
