/** The decoder of each trace kind (docs/formats.md). */
import type { Batch } from '../core/events.js';
import type { TraceKind } from '../core/pipeline.js';
import type { Machine } from '../core/machine.js';
import type { Decoder, TimeBase } from './decoder.js';
import { CswitchDecoder } from './cswitch.js';
import { DiskDecoder } from './disk.js';
import { GuestDecoder } from './guest.js';
import { MeasuredDecoder } from './measured.js';

export function makeDecoder(kind: TraceKind, file: string, base: TimeBase, machine: Machine): Decoder<Batch> {
  const make = {
    cswitch: () => new CswitchDecoder(file, base, machine),
    disk: () => new DiskDecoder(file, base, machine),
    guest: () => new GuestDecoder(file, base, machine),
    measured: () => new MeasuredDecoder(file, base, machine),
  }[kind];
  // Each decoder emits only its own batch kind; streams treat them alike.
  return make() as unknown as Decoder<Batch>;
}
