#!/bin/sh
# Runs every guest in test/guests/bin/ under QEMU (the oracle) and records what it printed
# and how it exited into test/guests/expected/<name>.json. Needs qemu-system-i386; the tests
# themselves do not. Usage: record-qemu.sh [name...]
set -eu
cd "$(dirname "$0")"
QEMU=${QEMU:-qemu-system-i386}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
names=${*:-$(cd bin && ls *.elf | sed 's/\.elf$//')}
version=$($QEMU --version | head -1)
for name in $names; do
  cmd="$QEMU -M pc -m 128 -display none -nodefaults -no-reboot -icount shift=0,sleep=off -device isa-debug-exit,iobase=0xf4,iosize=0x04 -debugcon file:DEBUGCON -serial file:SERIAL -kernel bin/$name.elf"
  run=$(echo "$cmd" | sed "s#DEBUGCON#$TMP/$name.e9#; s#SERIAL#$TMP/$name.ser#")
  set +e
  timeout 120 $run
  status=$?
  set -e
  node -e '
    const fs = require("fs");
    const [name, status, e9, ser, version, cmd, out] = process.argv.slice(1);
    const rec = {
      guest: name,
      debugcon: fs.readFileSync(e9).toString("latin1"),
      serial: fs.readFileSync(ser).toString("latin1"),
      exitStatus: Number(status),
      exitCode: Number(status) & 1 ? Number(status) >> 1 : null,
      note: Number(status) === 0 ? "QEMU status 0: no isa-debug-exit write (triple fault or shutdown)" : undefined,
      qemuVersion: version,
      command: cmd,
    };
    fs.writeFileSync(out, JSON.stringify(rec, null, 2) + "\n");
  ' "$name" "$status" "$TMP/$name.e9" "$TMP/$name.ser" "$version" "$cmd" "expected/$name.json"
  echo "$name: status $status, $(wc -c < "$TMP/$name.e9") bytes on debugcon, $(wc -c < "$TMP/$name.ser") on COM1"
done
