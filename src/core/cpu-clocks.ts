/**
 * How far each physical CPU's log has reached: the stages that hold intervals or windows open
 * (cpu-split, driver-charge, virtual-counters) may close them once every CPU has passed them.
 */
import { resized } from './typed.js';

export class CpuClocks {
  private lastT = new Float64Array(0);
  private seenFlag = new Uint8Array(0);

  /** Records that `cpu`'s log reached `t`; true when this is the first time `cpu` is seen. */
  see(cpu: number, t: number): boolean {
    if (cpu >= this.lastT.length) {
      const n = Math.max(cpu + 1, 2 * this.lastT.length);
      this.lastT = resized(this.lastT, n);
      this.seenFlag = resized(this.seenFlag, n);
    }
    const first = this.seenFlag[cpu] === 0;
    this.seenFlag[cpu] = 1;
    this.lastT[cpu] = t;
    return first;
  }

  /** The time every seen CPU has reached; −∞ before any. */
  min(): number {
    let w = Infinity;
    for (let c = 0; c < this.lastT.length; c++) if (this.seenFlag[c] && this.lastT[c]! < w) w = this.lastT[c]!;
    return w === Infinity ? -Infinity : w;
  }

  /** The seen CPUs with the time each has reached. */
  *entries(): Generator<[number, number]> {
    for (let c = 0; c < this.lastT.length; c++) if (this.seenFlag[c]) yield [c, this.lastT[c]!];
  }

  get count(): number {
    return this.seenFlag.reduce((a, v) => a + v, 0);
  }
}
