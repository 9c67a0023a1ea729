/**
 * A thin layer over the assembler for the kernel. Works around one encoder limitation
 * (reported to the coordinator): `mov` between the accumulator and an absolute address at or
 * above 2 GiB picks the moffs form (A0-A3), whose displacement iced wants unsigned, while
 * the encoder passes it signed, so the build fails. Here such a `mov` is emitted as the
 * equivalent ModRM form (8A/8B/88/89 with mod=00 r/m=101, disp32) from bytes and a dword
 * fixup: same instruction, one byte longer, as GAS emits with `mov.d32`.
 */
import { Assembler, type AssemblerOptions } from '../../x86/assembler.js';
import { Mem, Reg, type Imm } from '../../x86/operands.js';

const ACC = new Set(['eax', 'ax', 'al']);

function absolute(m: unknown): m is Mem {
  return m instanceof Mem && m.base === null && m.index === null && m.seg === null;
}

/** The kernel's assembler. */
export class KernelAssembler extends Assembler {
  constructor(options: AssemblerOptions) { super(options); }

  override mov(dst: Reg | Mem, src: Reg | Mem | Imm): void {
    const load = dst instanceof Reg && ACC.has(dst.name) && absolute(src);
    const store = src instanceof Reg && ACC.has(src.name) && absolute(dst);
    if (!load && !store) { super.mov(dst, src); return; }
    const reg = (load ? dst : src) as Reg;
    const m = (load ? src : dst) as Mem;
    const op = (reg.size === 1 ? 0x88 : 0x89) + (load ? 2 : 0);
    if (reg.size === 2) this.db(0x66);
    this.db(op, 0x05);
    if (m.ref) this.dd(m.ref.plus(m.disp)); else this.dd(m.disp >>> 0);
  }
}
