/**
 * The disk request log (docs/formats.md):
 * `ts_ns,vm,op,offset,bytes[,latency_ns][,container][,disk]`, one row per completed request,
 * written by the driver VM's translation module (§3.3.2).
 */
import { newDiskBatch, type DiskBatch } from '../core/events.js';
import type { Machine } from '../core/machine.js';
import { Decoder, NameTable, type TimeBase } from './decoder.js';
import { PARSED } from './exact.js';
import type { Fields } from './scan.js';

export class DiskDecoder extends Decoder<DiskBatch> {
  private readonly names = new NameTable();
  private iTs = 0;
  private iVm = 0;
  private iOp = 0;
  private iOff = 0;
  private iBytes = 0;
  private iLat = -1;
  private iCont = -1;
  private iDisk = -1;
  private readonly diskIds: string[];
  /** Last completion time and line per disk (index in `names`). */
  private readonly lastT = new Map<number, { t: number; line: number }>();

  constructor(
    file: string,
    base: TimeBase,
    private readonly machine: Machine,
  ) {
    super(file, base, { required: ['ts_ns', 'vm', 'op', 'offset', 'bytes'], optional: ['latency_ns', 'container', 'disk'] }, 'disk');
    this.diskIds = Object.keys(machine.profile.disks);
  }

  protected newBatch(): DiskBatch {
    return newDiskBatch(this.file, this.names.names);
  }

  protected override onHeader(): void {
    this.iTs = this.col('ts_ns');
    this.iVm = this.col('vm');
    this.iOp = this.col('op');
    this.iOff = this.col('offset');
    this.iBytes = this.col('bytes');
    this.iLat = this.col('latency_ns');
    this.iCont = this.col('container');
    this.iDisk = this.col('disk');
    if (this.iDisk < 0 && this.diskIds.length !== 1) {
      this.line = 1;
      this.fail(
        'E_HEADER',
        this.diskIds.length === 0
          ? 'the profile declares no disks, so disk requests cannot be accounted (add "disks" to the profile)'
          : `the profile has ${this.diskIds.length} disks (${this.diskIds.join(', ')}), so the disk log needs a 'disk' column`,
      );
    }
  }

  protected decode(f: Fields): void {
    const t = this.time(f, this.iTs);
    const vm = this.vmIndex(f, this.iVm, this.machine, false);
    const opB = f.singleByte(this.iOp);
    const op = opB === 82 ? 0 : opB === 87 ? 1 : this.fail('E_FIELD', `op is '${f.text(this.iOp)}'; expected R or W`, this.iOp);
    this.uint(f, this.iOff);
    const offset = PARSED.hi * 1e9 + PARSED.lo;
    this.uint(f, this.iBytes);
    const bytes = PARSED.hi * 1e9 + PARSED.lo;
    let latency = NaN;
    if (this.iLat >= 0 && !f.isEmpty(this.iLat)) {
      this.uint(f, this.iLat);
      latency = PARSED.hi * 1e9 + PARSED.lo;
    }
    const container = this.iCont >= 0 && !f.isEmpty(this.iCont) ? this.names.internField(f, this.iCont) : -1;
    let disk = -1;
    if (this.iDisk >= 0 && !f.isEmpty(this.iDisk)) {
      disk = this.names.internField(f, this.iDisk);
      const d = this.names.names[disk]!;
      if (!Object.hasOwn(this.machine.profile.disks, d)) this.fail('E_FIELD', `unknown disk '${d}': the profile's disks are ${this.diskIds.join(', ') || 'none'}`, this.iDisk);
    } else if (this.diskIds.length !== 1) {
      this.fail('E_FIELD', `disk is empty, but the profile has ${this.diskIds.length} disks (${this.diskIds.join(', ')})`, this.iDisk);
    } else {
      disk = this.names.intern(this.diskIds[0]!);
    }
    const last = this.lastT.get(disk);
    if (last && t < last.t) {
      this.fail('E_ORDER', `time goes backwards on the disk: ${f.text(this.iTs)} is before the previous completion (line ${last.line})`, this.iTs);
    }
    if (last) {
      last.t = t;
      last.line = this.line;
    } else this.lastT.set(disk, { t, line: this.line });
    const b = this.batch;
    const i = b.length;
    b.t[i] = t;
    b.line[i] = this.line;
    b.vm[i] = vm;
    b.op[i] = op;
    b.offset[i] = offset;
    b.bytes[i] = bytes;
    b.latency[i] = latency;
    b.container[i] = container;
    b.disk[i] = disk;
    b.length = i + 1;
  }
}
