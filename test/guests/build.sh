#!/bin/sh
# Rebuilds the test guests (multiboot v1 ELF kernels) into test/guests/bin/.
# Needs gcc with -m32 support and GNU ld; the built binaries are committed so tests do not.
set -eu
cd "$(dirname "$0")"
SRC=src
OUT=bin
mkdir -p "$OUT"
CC=${CC:-gcc}
CFLAGS="-m32 -march=i686 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -static \
  -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -fno-builtin \
  -mno-sse -mno-mmx -Wall -Wextra -Wno-unused-parameter"
LDFLAGS="-Wl,-T,$SRC/linker.ld -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-n -Wl,--no-warn-rwx-segments"

build() { # name, then sources and extra flags
  name=$1; shift
  $CC $CFLAGS $LDFLAGS -o "$OUT/$name.elf" "$SRC/boot.S" "$SRC/lib.c" "$@"
  echo "built $OUT/$name.elf ($(stat -c %s "$OUT/$name.elf") bytes)"
}

build hello "$SRC/hello.c"
build isa "$SRC/isa.c" "$SRC/isa_asm.S"
build isa-verbose -DVERBOSE "$SRC/isa.c" "$SRC/isa_asm.S"
