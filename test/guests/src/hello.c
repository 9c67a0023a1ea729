/* hello: the smallest useful guest. Checks the multiboot hand-off and prints it on both
 * consoles (debugcon 0xE9 and COM1), then exits with code 0x2A. */
#include "lib.h"

struct mb_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
};

u32 kmain(u32 magic, const struct mb_info *mbi) {
  puts("hello from a multiboot guest\n");
  puts("magic "); puthex(magic); puts(magic == MB_BOOT_MAGIC ? " ok\n" : " BAD\n");
  if (magic != MB_BOOT_MAGIC) return 0x7f;
  /* Only the memory fields are compared: which optional fields a loader fills differs. */
  puts("flags.mem "); putdec(mbi->flags & 1); puts("\n");
  if (mbi->flags & 1) {
    puts("mem_lower "); putdec(mbi->mem_lower); puts(" KiB\n");
    puts("mem_upper "); putdec(mbi->mem_upper); puts(" KiB\n");
  }
  serial_init();
  serial_puts("hello on COM1\n");
  puts("bye\n");
  return 0x2A;
}
