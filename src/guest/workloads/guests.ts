/**
 * The workload suite as built-in guests of `virtlab build-guest` (`workload-NAME`): the
 * kernel image with the workload's programs. The devices a workload needs (disk image, NIC
 * inputs) are not part of an image; `virtlab exec workload:NAME` supplies them.
 */
import type { GuestBuilder } from '../builtin-guests.js';
import { WORKLOADS, buildWorkload, domainOf } from './index.js';

export const WORKLOAD_GUESTS: Readonly<Record<string, GuestBuilder>> = Object.fromEntries(WORKLOADS.map((w): [string, GuestBuilder] => [`workload-${w.name}`, {
  description: w.description,
  params: Object.fromEntries(Object.entries(w.params).map(([k, s]) => [k, { description: `${s.description} (${domainOf(s)})`, default: String(s.default) }])),
  build: (params) => buildWorkload(w.name, params).image,
}]));
