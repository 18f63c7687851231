/** The decoder of each trace kind (DESIGN §1). */
import type { Batch } from './events.js';
import type { TraceKind } from './pipeline.js';
import type { Machine } from './profile.js';
import type { Decoder, TimeBase } from '../traces/decoder.js';
import { CswitchDecoder } from '../traces/cswitch.js';
import { DiskDecoder } from '../traces/disk.js';
import { GuestDecoder } from '../traces/guest.js';
import { MeasuredDecoder } from '../traces/measured.js';

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
