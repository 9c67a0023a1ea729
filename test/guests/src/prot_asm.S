/* Far-transfer targets for prot.c: 32-bit far procedures, a call-gate target, and a 16-bit
 * code segment (selector 0x18, based at code16_base) entered by a far call. */
  .text
  .globl far_ret_plain, far_ret_imm, gate_target, call16_test, code16_base, code16_end

/* Returns (CS << 16 | old CS from the stack) in EAX; RETF. */
far_ret_plain:
  mov %cs, %eax
  shl $16, %eax
  movw 4(%esp), %ax
  lret

/* RETF 8: also drops two dword arguments. */
far_ret_imm:
  mov 8(%esp), %eax
  add 12(%esp), %eax
  lret $8

/* Reached through the call gate: EAX = CS, ECX = the first copied... (none: count 0). */
gate_target:
  mov %cs, %eax
  lret

/* u32 call16_test(u32 x): far call into 16-bit code; returns what it computed in EAX. */
call16_test:
  push %ebx
  mov 8(%esp), %eax
  lcall $0x18, $(code16_entry - code16_base)
  pop %ebx
  ret

  .balign 16
code16_base:
  .code16
code16_entry:
  /* 16-bit operand size by default: AX arithmetic keeps EAX's upper half. */
  add $0x1111, %ax
  /* 32-bit operation with a 66 prefix. */
  addl $0x10000, %eax
  /* 16-bit push/pop of a register and a near call/ret inside the 16-bit segment. */
  push %ax
  call 1f
  pop %bx
  xor %bx, %ax
  /* Return with a 32-bit far return (66 CB): the caller pushed CS:EIP as dwords. */
  lretl
1:
  inc %ax
  ret
  .code32
code16_end:
