/**
 * Instruction classes: the granularity at which a profile gives cycle costs. Each opcode
 * handler index maps to one class; the profile gives one figure (with its source) per class.
 */
export const INSTRUCTION_CLASSES = [
  'aluReg', 'mov', 'xchg', 'mul', 'shiftDouble', 'bcdAdjust', 'aam', 'xlat',
  'branch', 'jump', 'loop', 'call', 'ret', 'enter', 'leave', 'bound',
  'push', 'pop', 'pushSegment', 'pushAll', 'popAll', 'pushFlags', 'popFlags',
  'segmentLoad', 'loadFarPointer', 'jumpFar', 'callFar', 'returnFar',
  'softwareInterrupt', 'iret', 'cli', 'sti', 'directionFlag',
  'movs', 'stos', 'lods', 'scas', 'cmps', 'portIoInstruction',
  'cpuid', 'rdtsc', 'msr', 'movControlRegister', 'descriptorTable', 'privileged',
  'fpu', 'prefix', 'undefined',
] as const;

export type InstructionClass = (typeof INSTRUCTION_CLASSES)[number];

/**
 * The class of every handler index 0x000–0x1FF (0x100 | xx for 0F xx); the 32-bit operand
 * size entries (+0x200) use the same class. Opcode groups whose members differ in cost
 * (F6/F7 TEST..IDIV, FF INC..PUSH, 0F 01 SGDT..INVLPG, C0/D0 ROL..SAR) are classed by
 * their common, cheap members; the dearer members (MUL, DIV, CALL, JMP, INVLPG) pay the
 * difference through `CostTable.groupExtra`, filled by `toCostTable`.
 */
export function opClassTable(): InstructionClass[] {
  const t = new Array<InstructionClass>(512).fill('undefined');
  const set = (cls: InstructionClass, ...ops: (number | [number, number])[]): void => {
    for (const o of ops) {
      if (typeof o === 'number') t[o] = cls;
      else for (let i = o[0]; i <= o[1]; i++) t[i] = cls;
    }
  };
  // ---- one-byte opcodes ----
  for (let base = 0; base < 0x40; base += 8) set('aluReg', [base, base + 5]); // ADD..CMP forms
  set('pushSegment', 0x06, 0x0e, 0x16, 0x1e);
  set('segmentLoad', 0x07, 0x17, 0x1f, 0x8e);
  set('prefix', 0x0f, 0x26, 0x2e, 0x36, 0x3e, [0x64, 0x67], 0xf0, 0xf2, 0xf3);
  set('bcdAdjust', 0x27, 0x2f, 0x37, 0x3f, 0xd5);
  set('aam', 0xd4);
  set('aluReg', [0x40, 0x4f], 0x63, [0x80, 0x85], 0x90, 0x98, 0x99, 0x9b, 0x9e, 0x9f, 0xa8, 0xa9,
    0xc0, 0xc1, [0xd0, 0xd3], 0xd6, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfe, 0xff);
  set('push', [0x50, 0x57], 0x68, 0x6a);
  set('pop', [0x58, 0x5f], 0x8f);
  set('pushAll', 0x60);
  set('popAll', 0x61);
  set('bound', 0x62);
  set('mul', 0x69, 0x6b);
  set('portIoInstruction', [0x6c, 0x6f], [0xe4, 0xe7], [0xec, 0xef]);
  set('branch', [0x70, 0x7f], 0xe3);
  set('xchg', 0x86, 0x87, [0x91, 0x97]);
  set('mov', [0x88, 0x8d], [0xa0, 0xa3], [0xb0, 0xbf], 0xc6, 0xc7);
  set('callFar', 0x9a);
  set('pushFlags', 0x9c);
  set('popFlags', 0x9d);
  set('movs', 0xa4, 0xa5);
  set('cmps', 0xa6, 0xa7);
  set('stos', 0xaa, 0xab);
  set('lods', 0xac, 0xad);
  set('scas', 0xae, 0xaf);
  set('ret', 0xc2, 0xc3);
  set('loadFarPointer', 0xc4, 0xc5);
  set('enter', 0xc8);
  set('leave', 0xc9);
  set('returnFar', 0xca, 0xcb);
  set('softwareInterrupt', 0xcc, 0xcd, 0xce, 0xf1);
  set('iret', 0xcf);
  set('xlat', 0xd7);
  set('fpu', [0xd8, 0xdf]);
  set('loop', [0xe0, 0xe2]);
  set('call', 0xe8);
  set('jump', 0xe9, 0xeb);
  set('jumpFar', 0xea);
  set('privileged', 0xf4);
  set('cli', 0xfa);
  set('sti', 0xfb);
  set('directionFlag', 0xfc, 0xfd);
  // ---- 0F xx ----
  const x = (o: number): number => 0x100 | o;
  set('descriptorTable', x(0x00), x(0x01), x(0x02), x(0x03));
  set('privileged', x(0x06), x(0x08), x(0x09), x(0xaa), x(0x34), x(0x35));
  set('aluReg', x(0x0b), x(0x1f), [x(0x40), x(0x4f)], [x(0x90), x(0x9f)], x(0xa3), x(0xab), x(0xb3),
    x(0xba), x(0xbb), x(0xbc), x(0xbd), [x(0xc8), x(0xcf)], [x(0x18), x(0x1e)]);
  set('movControlRegister', [x(0x20), x(0x23)]);
  set('msr', x(0x30), x(0x32));
  set('rdtsc', x(0x31), x(0x33));
  set('branch', [x(0x80), x(0x8f)]);
  set('pushSegment', x(0xa0), x(0xa8));
  set('segmentLoad', x(0xa1), x(0xa9));
  set('cpuid', x(0xa2));
  set('shiftDouble', x(0xa4), x(0xa5), x(0xac), x(0xad));
  set('mul', x(0xaf));
  set('xchg', x(0xb0), x(0xb1), x(0xc0), x(0xc1), x(0xc7));
  set('loadFarPointer', x(0xb2), x(0xb4), x(0xb5));
  set('mov', x(0xb6), x(0xb7), x(0xbe), x(0xbf));
  set('fpu', [x(0x60), x(0x7f)], x(0xae));
  return t;
}
