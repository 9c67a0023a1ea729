/* ENTER/LEAVE probes for isa.c: each runs ENTER with one nesting level on a scratch stack
 * whose EBP chain the C side prepared, then LEAVE, and records ESP/EBP after each. */
  .section .bss
  .align 16
  .globl enter_scratch, enter_result
enter_scratch: .space 512
enter_result:  .space 16
saved_esp:     .space 4

  .text
.macro ENTER_TEST name, level
  .globl \name
\name:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov 20(%esp), %eax          /* the prepared EBP */
  mov %esp, saved_esp
  mov $enter_scratch+512, %esp
  mov %eax, %ebp
  enter $0x14, $\level
  mov %esp, enter_result
  mov %ebp, enter_result+4
  leave
  mov %esp, enter_result+8
  mov %ebp, enter_result+12
  mov saved_esp, %esp
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret
.endm

ENTER_TEST enter_test0, 0
ENTER_TEST enter_test1, 1
ENTER_TEST enter_test3, 3
ENTER_TEST enter_test31, 31
