// A guest module for the build-guest tests: `virtlab build-guest test/guest/image-module-fixture.ts`.
import { imageFromAssembly, type GuestImage } from '../../src/guest/image.js';
import { Assembler } from '../../src/x86/assembler.js';
import { al } from '../../src/x86/operands.js';

export default function build(params: Record<string, string>): GuestImage {
  const a = new Assembler({ origin: 0x200000 });
  const start = a.func('start', () => {
    for (const ch of params.text ?? 'mod\n') {
      a.mov(al, ch.charCodeAt(0));
      a.pvop('port-out', () => a.out(0xe9, al));
    }
    a.mov(al, 9);
    a.out(0xf4, al);
  });
  return imageFromAssembly(a.build(), { name: 'fixture', entry: start, metadata: { params } });
}
