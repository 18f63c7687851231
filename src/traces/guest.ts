/**
 * The guest container log (docs/formats.md): `ts_ns,vm,cpu,container,tsc,<event>...`, one row per
 * switch between resource containers (or tasks) inside a guest (§3.4.3), with the hardware counters
 * read at that instant. Consecutive rows of one (vm, cpu) form a period of the container named on
 * the later row. The first row of each (vm, cpu) opens the lane: it is passed on as an empty period
 * (t0 = t, no advances), so that later stages know where the lane starts (virtual-counters takes
 * its snapshot of the other VMs' advances there).
 */
import { newContainerBatch, type ContainerBatch } from '../core/events.js';
import type { Machine } from '../core/machine.js';
import { Decoder, NameTable, type TimeBase } from './decoder.js';
import { PARSED, counterAdvance, formatExact } from './exact.js';
import { MAX_CPU, eventJumpMessage, maxEventAdvance, maxEventsPerNs } from './cswitch.js';
import type { Fields } from './scan.js';

interface Lane {
  t: number;
  line: number;
  tscHi: number;
  tscLo: number;
  evHi: Float64Array;
  evLo: Float64Array;
}

export class GuestDecoder extends Decoder<ContainerBatch> {
  private readonly names = new NameTable();
  private readonly nEv: number;
  private readonly bits: number;
  private iTs = 0;
  private iVm = 0;
  private iCpu = 0;
  private iCont = 0;
  private iTsc = 0;
  private evCol: Int32Array;
  private readonly lanes = new Map<number, Lane>();
  private readonly curHi: Float64Array;
  private readonly curLo: Float64Array;
  private readonly maxEventsPerNs: number;

  constructor(
    file: string,
    base: TimeBase,
    private readonly machine: Machine,
  ) {
    super(file, base, { required: ['ts_ns', 'vm', 'cpu', 'container', 'tsc'], events: machine.eventNames }, 'guest');
    this.nEv = machine.eventNames.length;
    this.bits = machine.profile.cpu.counter_bits;
    this.counterRange(this.bits);
    this.evCol = new Int32Array(this.nEv);
    this.curHi = new Float64Array(this.nEv);
    this.curLo = new Float64Array(this.nEv);
    this.maxEventsPerNs = maxEventsPerNs(machine);
  }

  protected newBatch(): ContainerBatch {
    return newContainerBatch(this.file, this.nEv, this.names.names);
  }

  protected override onHeader(): void {
    this.iTs = this.col('ts_ns');
    this.iVm = this.col('vm');
    this.iCpu = this.col('cpu');
    this.iCont = this.col('container');
    this.iTsc = this.col('tsc');
    this.machine.eventNames.forEach((e, k) => (this.evCol[k] = this.col(e)));
  }

  protected decode(f: Fields): void {
    const t = this.time(f, this.iTs);
    const vm = this.vmIndex(f, this.iVm, this.machine, false);
    const cpu = this.smallInt(f, this.iCpu, MAX_CPU);
    if (f.isEmpty(this.iCont)) this.fail('E_FIELD', 'container is empty; expected the name of a resource container', this.iCont);
    const container = this.names.internField(f, this.iCont);
    this.uint(f, this.iTsc);
    const tHi = PARSED.hi;
    const tLo = PARSED.lo;
    for (let e = 0; e < this.nEv; e++) {
      const c = this.evCol[e]!;
      this.counter(f, c);
      this.curHi[e] = PARSED.hi;
      this.curLo[e] = PARSED.lo;
    }
    const key = vm * (MAX_CPU + 1) + cpu;
    const lane = this.lanes.get(key);
    if (!lane) {
      this.lanes.set(key, { t, line: this.line, tscHi: tHi, tscLo: tLo, evHi: Float64Array.from(this.curHi), evLo: Float64Array.from(this.curLo) });
      this.put(t, t, vm, cpu, container, 0);
      this.batch.dev.fill(0, (this.batch.length - 1) * this.nEv, this.batch.length * this.nEv);
      return;
    }
    if (t < lane.t) this.fail('E_ORDER', `time goes backwards for ${this.machine.consumers[vm]} on cpu ${cpu}: ${f.text(this.iTs)} is before line ${lane.line}`, this.iTs);
    const dtsc = counterAdvance(tHi, tLo, lane.tscHi, lane.tscLo, 64);
    if (dtsc < 0) this.backwards(f, this.iTsc, lane, lane.tscHi, lane.tscLo, 64);
    const b = this.batch;
    const i = b.length;
    const maxAdv = maxEventAdvance(this.maxEventsPerNs, t - lane.t);
    for (let e = 0; e < this.nEv; e++) {
      const adv = counterAdvance(this.curHi[e]!, this.curLo[e]!, lane.evHi[e]!, lane.evLo[e]!, this.bits);
      if (adv < 0) this.backwards(f, this.evCol[e]!, lane, lane.evHi[e]!, lane.evLo[e]!, this.bits);
      if (adv > maxAdv) {
        this.fail('E_COUNTER', eventJumpMessage(`counter ${this.columnName(this.evCol[e]!)} of ${this.machine.consumers[vm]} on cpu ${cpu}`, lane.line, adv, t - lane.t, this.machine), this.evCol[e]!);
      }
      b.dev[i * this.nEv + e] = adv;
    }
    this.put(lane.t, t, vm, cpu, container, dtsc);
    lane.t = t;
    lane.line = this.line;
    lane.tscHi = tHi;
    lane.tscLo = tLo;
    lane.evHi.set(this.curHi);
    lane.evLo.set(this.curLo);
  }

  private put(t0: number, t: number, vm: number, cpu: number, container: number, dtsc: number): void {
    const b = this.batch;
    const i = b.length;
    b.t[i] = t;
    b.t0[i] = t0;
    b.line[i] = this.line;
    b.vm[i] = vm;
    b.cpu[i] = cpu;
    b.container[i] = container;
    b.dtsc[i] = dtsc;
    b.length = i + 1;
  }

  private backwards(f: Fields, c: number, lane: Lane, phi: number, plo: number, bits: number): never {
    this.fail(
      'E_COUNTER',
      `counter ${this.columnName(c)} goes backwards, from ${formatExact(phi, plo)} (line ${lane.line}) to ${f.text(c)}, which is no plausible wrap of a ${bits}-bit counter`,
      c,
    );
  }
}
