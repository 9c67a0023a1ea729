/**
 * virtlab kernel: memory layout, selectors, process-table layout and the system-call ABI.
 * Shared by the kernel builder, the user-program builder and tests. See docs/kernel.md.
 */

/** Kernel virtual base: physical address p is mapped at KERNEL_VIRT + p (as 32-bit Linux's PAGE_OFFSET). */
export const KERNEL_VIRT = 0xc000_0000;
/** Where the kernel image is loaded (physical). */
export const KERNEL_PHYS = 0x10_0000;
/** Physical memory mapped by the kernel's direct map (and managed by its frame allocator). */
export const DIRECT_MAP_BYTES = 32 * 1024 * 1024;
/** Start of the top 64 MiB, left unmapped for a hypervisor (Xen's 32-bit PV hole). */
export const HYPERVISOR_HOLE = 0xfc00_0000;

/** User address space. */
export const USER_BASE = 0x0804_8000;
export const MMAP_BASE = 0x4000_0000;
/** The vDSO page (read-only, user): the SYSENTER entry stub. */
export const VDSO_ADDR = 0xbfff_f000;
/** Initial user stack pointer; the stack region is demand-zero below it. */
export const USER_STACK_TOP = 0xbfff_e000;
export const USER_STACK_BOTTOM = 0xbff0_0000;
/** Offsets in the vDSO page. */
export const VDSO_SYSENTER = VDSO_ADDR;
/** Where SYSEXIT returns: the instruction after SYSENTER in the vDSO stub. */
export const VDSO_SYSENTER_RETURN = VDSO_ADDR + 7;

/**
 * GDT selectors (the SYSENTER layout: kernel CS, kernel SS = CS+8, user CS = CS+16, user SS = CS+24).
 * The GDT (and its and the IDT's pseudo-descriptors) sits alone on a page of the kernel's
 * data section: `trap` and `full` write-protect the GDT's page to keep their descriptor
 * copies in sync, so a variable written on it (once `current`, `ticks`, `cur_cr3`) costs a
 * trace fault per write. The IDT and TSS (bss) are not write-protected by any monitor.
 */
export const SEL_KCODE = 0x08;
export const SEL_KDATA = 0x10;
export const SEL_UCODE = 0x1b;
export const SEL_UDATA = 0x23;
export const SEL_TSS = 0x28;

/** Maximum number of processes (slot 0 is the idle task). */
export const MAX_PROCS = 16;

/** Page-table entry bits. PTE_COW is a software bit (bit 9, "available"). */
export const PTE_P = 1, PTE_W = 2, PTE_U = 4, PTE_G = 0x100, PTE_COW = 0x200;

/** Trap frame layout (offsets from the frame's lowest address; built by the entry stubs). */
export const TF = {
  EDI: 0, ESI: 4, EBP: 8, KESP: 12, EBX: 16, EDX: 20, ECX: 24, EAX: 28, ES: 32, DS: 36,
  VECTOR: 40, ERR: 44, EIP: 48, CS: 52, EFLAGS: 56, UESP: 60, USS: 64, SIZE: 68,
} as const;
/** Pseudo-vector recorded in the frame of a system call that came through SYSENTER (returns by SYSEXIT). */
export const VEC_SYSENTER = 0x81;

/** Process-table entry layout. */
export const P = {
  STATE: 0, PID: 4, PPID: 8, KESP: 12, CR3: 16, PD: 20, KSTACK: 24, EXIT: 28, WAKE: 32, CHAN: 36, MMAP_NEXT: 40,
  /** 8 regions of [start, end): the program image + bss, the stack, then mmap regions. */
  VMA: 64, SIZE: 128,
} as const;
export const NVMA = 8;
export const PS_FREE = 0, PS_RUNNABLE = 1, PS_BLOCKED = 2, PS_ZOMBIE = 3;

/**
 * System-call numbers (Linux i386 numbers where Linux has the call; virtlab's own above 240).
 * ABI: `int 0x80` or SYSENTER through the vDSO (`call VDSO_SYSENTER`), EAX = number,
 * arguments in EBX, ECX, EDX, ESI, EDI; result in EAX (negative errno on error); every
 * other register is preserved.
 */
export const SYS = {
  /** exit(code): never returns. */
  exit: 1,
  /** fork(): child pid to the parent, 0 to the child; copy-on-write. */
  fork: 2,
  /** read(fd, buf, len): from a pipe's read end (blocks while empty; 0 at end of file); fds 0..2 give 0. */
  read: 3,
  /** write(fd, buf, len): fds 0..2 write the console; a pipe's write end blocks while full; returns len. */
  write: 4,
  /** close(fd): closes a pipe end (fds 0..2: no-op). */
  close: 6,
  /** waitpid(pid | -1, statusPtr | 0): reaps a child; *status = its exit code; returns its pid, -ECHILD. */
  waitpid: 7,
  /** execve(name): replaces the program by the built-in program `name` (NUL-terminated); -ENOENT. */
  execve: 11,
  /** time(): timer ticks since boot. */
  time: 13,
  /** getpid(). */
  getpid: 20,
  /** pipe(int fds[2]): fds[0] = read end, fds[1] = write end; -EMFILE when all pipes are in use. */
  pipe: 42,
  /** munmap(addr, len): addr must start an mmap region; 0 or -EINVAL. */
  munmap: 91,
  /** sched_yield(). */
  sched_yield: 158,
  /** nanosleep(ticks): sleeps for `ticks` timer ticks (virtlab: a tick count, not a timespec). */
  nanosleep: 162,
  /** mmap2(addr (ignored), len, prot, flags, fd, pgoff): anonymous, demand-zero, read/write; the address or -ENOMEM. */
  mmap2: 192,
  /** blk_read(lba, buf, count 1..8): reads 512-byte sectors; returns count or -EIO/-EINVAL. */
  blk_read: 241,
  /** blk_write(lba, buf, count 1..8). */
  blk_write: 242,
  /** net_send(buf, len 14..1514): sends a frame (the kernel fills in the source MAC); returns len. */
  net_send: 243,
  /** net_recv(buf, maxlen): blocks until a frame arrives; returns its length (truncated to maxlen). */
  net_recv: 244,
} as const;

export const ENOENT = 2, EIO = 5, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EFAULT = 14, EINVAL = 22, EMFILE = 24, ENOSYS = 38, ENODEV = 19;

/** Exit status of a process killed by a fault: 128 + the signal, as a shell reports it. */
export const KILL_SEGV = 139, KILL_FPE = 136, KILL_ILL = 132;
