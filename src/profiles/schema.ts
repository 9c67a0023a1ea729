import { z } from 'zod';
import { INSTRUCTION_CLASSES, type InstructionClass } from './op-classes.js';

/** A number with where it comes from: every figure of a profile carries its source. */
export const Figure = z.object({
  value: z.number().int().nonnegative(),
  source: z.string().min(1, 'a figure needs a source'),
}).strict();
export type Figure = z.infer<typeof Figure>;

const TlbShape = z.object({ sets: Figure, ways: Figure }).strict();

const classCosts = Object.fromEntries(INSTRUCTION_CLASSES.map((c) => [c, Figure])) as Record<InstructionClass, typeof Figure>;

/**
 * A CPU cost profile: data, not code, so a user can copy one and change a number. Cycle
 * figures are integers; the model charges each instruction its class's figure, plus the
 * per-event figures below where the CPU applies them.
 */
export const Profile = z.object({
  schema: z.literal('virtlab.profile/1'),
  name: z.string().min(1),
  description: z.string(),
  cpu: z.object({
    model: z.string().min(1),
    frequencyHz: Figure,
  }).strict(),
  /** Base cycles per instruction class (see op-classes.ts for which opcodes are which). */
  classes: z.object(classCosts).strict(),
  /** Per-event costs the CPU adds to an instruction's base. */
  events: z.object({
    /** An ALU instruction with a memory source (the memory-operand extra is this − aluReg). */
    aluMem: Figure,
    branchTaken: Figure,
    repIteration: Figure,
    interrupt: Figure,
    privilegeChange: Figure,
    portIo: Figure,
    segmentLoadProtected: Figure,
    pageWalkReference: Figure,
    div8: Figure,
    div16: Figure,
    div32: Figure,
    invlpg: Figure,
  }).strict(),
  tlb: z.object({
    itlb: TlbShape,
    dtlb: TlbShape,
  }).strict(),
  notes: z.array(z.string()).optional(),
}).strict();
export type Profile = z.infer<typeof Profile>;
