/* Low-level parts of the sys kernel: exception/IRQ entry stubs, the ring-3 entry and the
 * way back, and the SYSENTER entry. */
#define KCODE 0x08
#define KDATA 0x10

  .text
/* Each stub pushes a dummy error code when the CPU does not, then the vector. */
.macro STUB_NOERR vec
  .globl isr_\vec
isr_\vec:
  push $0
  push $\vec
  jmp isr_common
.endm
.macro STUB_ERR vec
  .globl isr_\vec
isr_\vec:
  push $\vec
  jmp isr_common
.endm

STUB_NOERR 0
STUB_NOERR 1
STUB_NOERR 2
STUB_NOERR 3
STUB_NOERR 4
STUB_NOERR 5
STUB_NOERR 6
STUB_NOERR 7
STUB_ERR 8
STUB_NOERR 9
STUB_ERR 10
STUB_ERR 11
STUB_ERR 12
STUB_ERR 13
STUB_ERR 14
STUB_NOERR 15
STUB_NOERR 16
STUB_ERR 17
STUB_NOERR 18
STUB_NOERR 19
STUB_NOERR 32
STUB_NOERR 33
STUB_NOERR 34
STUB_NOERR 35
STUB_NOERR 36
STUB_NOERR 37
STUB_NOERR 38
STUB_NOERR 39
STUB_NOERR 40
STUB_NOERR 41
STUB_NOERR 42
STUB_NOERR 43
STUB_NOERR 44
STUB_NOERR 45
STUB_NOERR 46
STUB_NOERR 47
STUB_NOERR 128
STUB_NOERR 129

/* Frame layout (see struct frame in sys.c): gs fs es ds, PUSHA image, vector, error code,
 * then what the CPU pushed. */
isr_common:
  pushal
  push %ds
  push %es
  push %fs
  push %gs
  mov $KDATA, %ax
  mov %ax, %ds
  mov %ax, %es
  push %esp
  call isr_dispatch
  add $4, %esp
  pop %gs
  pop %fs
  pop %es
  pop %ds
  popal
  add $8, %esp
  iret

/* u32 enter_user(u32 eip, u32 esp): runs user code at CPL 3 until it calls
 * return_to_kernel(code), whose code is returned here. FS and GS are left holding the
 * kernel data selector: IRET to CPL 3 must null them. */
  .globl enter_user, return_to_kernel
enter_user:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov %esp, kernel_saved_esp
  mov 20(%esp), %eax
  mov 24(%esp), %ecx
  push $0x23
  push %ecx
  pushf
  orl $0x200, (%esp)
  andl $~0x3000, (%esp)
  push $0x1b
  push %eax
  mov $0x23, %dx
  mov %dx, %ds
  mov %dx, %es
  mov $KDATA, %dx
  mov %dx, %fs
  mov %dx, %gs
  iret

return_to_kernel:
  mov 4(%esp), %eax
  mov kernel_saved_esp, %esp
  mov $KDATA, %dx
  mov %dx, %ds
  mov %dx, %es
  mov %dx, %fs
  mov %dx, %gs
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  ret

/* SYSENTER: EAX = call number, EBX = argument, EDX = return EIP, ECX = return ESP. */
  .globl sysenter_entry
sysenter_entry:
  push %ecx
  push %edx
  push %ebx
  push %eax
  call sysenter_dispatch
  add $8, %esp
  pop %edx
  pop %ecx
  sti
  sysexit

  .section .bss
  .align 4
kernel_saved_esp: .space 4
