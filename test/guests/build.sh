#!/bin/sh
# Rebuilds the test guests (multiboot v1 ELF kernels) into test/guests/bin/.
# Needs gcc with -m32 support and GNU ld; the built binaries are committed so tests do not.
set -eu
cd "$(dirname "$0")"
SRC=src
OUT=bin
mkdir -p "$OUT"
CC=${CC:-gcc}
CFLAGS="-m32 -mno-sse -march=i686 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -static \
  -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -fno-builtin \
  -mno-mmx -Wall -Wextra -Wno-unused-parameter"
LDFLAGS="-Wl,-T,$SRC/linker.ld -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-n -Wl,--no-warn-rwx-segments"

OBJ=$(mktemp -d)
trap 'rm -rf "$OBJ"' EXIT

# Compiles each source to an object of a fixed name first, so no temporary file name ends
# up in the symbol table: the build is byte-for-byte reproducible.
build() { # name, then sources and -D flags
  name=$1; shift
  defs=""; objs=""
  for a in "$@"; do case $a in -D*) defs="$defs $a";; esac; done
  for a in "$@"; do
    case $a in
      -D*) ;;
      *) o="$OBJ/$name-$(basename "$a").o"; $CC $CFLAGS $defs -c "$a" -o "$o"; objs="$objs $o";;
    esac
  done
  $CC $CFLAGS $defs -c "$SRC/boot.S" -o "$OBJ/$name-boot.o"
  $CC $CFLAGS $defs -c "$SRC/lib.c" -o "$OBJ/$name-lib.o"
  $CC $CFLAGS $LDFLAGS -o "$OUT/$name.elf" "$OBJ/$name-boot.o" "$OBJ/$name-lib.o" $objs
  echo "built $OUT/$name.elf ($(stat -c %s "$OUT/$name.elf") bytes)"
}

build hello "$SRC/hello.c"
build isa "$SRC/isa.c" "$SRC/isa_asm.S"
build isa-verbose -DVERBOSE "$SRC/isa.c" "$SRC/isa_asm.S"
build sys "$SRC/sys.c" "$SRC/sys_asm.S"
build sys-heavy -DHEAVY -DITER=100000 "$SRC/sys.c" "$SRC/sys_asm.S"
build sys-heavy-small -DHEAVY -DITER=300 "$SRC/sys.c" "$SRC/sys_asm.S"
build compute -DROUNDS=2 "$SRC/compute.c"
build compute-bench -DROUNDS=110 "$SRC/compute.c"
build triple "$SRC/triple.c"
build sse "$SRC/sse.c"
build prot "$SRC/prot.c" "$SRC/prot_asm.S" "$SRC/sys_asm.S"
