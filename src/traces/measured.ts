/**
 * Measured power (docs/formats.md): `ts_ns,device,watts`, what an external DAQ sampled (§4: 1 kHz),
 * used only to validate the accounting. `device` is `cpu` or a disk id of the profile.
 */
import { newMeasuredBatch, type MeasuredBatch } from '../core/events.js';
import type { Machine } from '../core/machine.js';
import { Decoder, NameTable, type TimeBase } from './decoder.js';
import type { Fields } from './scan.js';

export class MeasuredDecoder extends Decoder<MeasuredBatch> {
  private readonly names = new NameTable();
  private readonly devices: Set<string>;
  private readonly lastT = new Map<number, number>();
  private iTs = 0;
  private iDev = 0;
  private iW = 0;

  constructor(file: string, base: TimeBase, machine: Machine) {
    super(file, base, { required: ['ts_ns', 'device', 'watts'] }, 'measured');
    this.devices = new Set(['cpu', ...Object.keys(machine.profile.disks)]);
  }

  protected newBatch(): MeasuredBatch {
    return newMeasuredBatch(this.file, this.names.names);
  }

  protected override onHeader(): void {
    this.iTs = this.col('ts_ns');
    this.iDev = this.col('device');
    this.iW = this.col('watts');
  }

  protected decode(f: Fields): void {
    const t = this.time(f, this.iTs);
    const device = this.names.internField(f, this.iDev);
    const d = this.names.names[device]!;
    if (!this.devices.has(d)) this.fail('E_FIELD', `unknown device '${d}'; expected one of ${[...this.devices].join(', ')}`, this.iDev);
    const w = this.nonNegativeNumber(f, this.iW);
    const last = this.lastT.get(device);
    if (last !== undefined && t < last) this.fail('E_ORDER', `time goes backwards for device ${d}`, this.iTs);
    this.lastT.set(device, t);
    const b = this.batch;
    const i = b.length;
    b.t[i] = t;
    b.line[i] = this.line;
    b.device[i] = device;
    b.watts[i] = w;
    b.length = i + 1;
  }
}
