/**
 * The README's walk-through, "From `perf record` to an energy matrix", run as written on a small
 * hand-made recording: `perf script` text of sched_switch with cycles, instructions and cache
 * misses, `perf stat -I -x,` samples with package energy, import, calibrate --into, replay, matrix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIO } from '../../src/commands/io.js';
import { perfStat, tmpDir } from '../helpers.js';

const TSC_HZ = 2.6e9;

/**
 * Two CPUs for 2 s in 10 ms periods: CPU 0 alternates vm1_cpu (2.6e9 cycles, 5e9 instructions and
 * 1e6 cache misses per second) with the idle task, CPU 1 vm2_cpu at half those rates with idle.
 */
function perfScript(): string {
  const out: string[] = [];
  const rates: Record<string, [number, number, number]> = { vm1_cpu: [2.6e9, 5e9, 1e6], vm2_cpu: [1.3e9, 2.5e9, 5e5] };
  const periods = 200;
  for (let k = 0; k <= periods; k++) {
    for (const cpu of [0, 1]) {
      const task = cpu === 0 ? 'vm1_cpu' : 'vm2_cpu';
      const prev = k === 0 || k % 2 === 0 ? `swapper/${cpu}` : task; // period k-1 ran `prev`
      const next = prev === task ? `swapper/${cpu}` : task;
      const pid = prev === task ? 1001 + cpu : 0;
      const time = (100 + k * 0.01).toFixed(6);
      const head = `${prev.padStart(16)} ${pid}/${pid} [00${cpu}] ${time}:`;
      out.push(`${head}          1 sched:sched_switch: prev_comm=${prev} prev_pid=${pid} prev_prio=120 prev_state=R ==> next_comm=${next} next_pid=${pid === 0 ? 1001 + cpu : 0} next_prio=120`);
      out.push(`${head} ${String(Math.round(TSC_HZ * 0.01)).padStart(10)}           msr/tsc/: `);
      if (k > 0 && prev === task) {
        const [c, i, m] = rates[task]!;
        out.push(`${head} ${String(c * 0.01).padStart(10)}             cycles: `);
        out.push(`${head} ${String(i * 0.01).padStart(10)}       instructions: `);
        out.push(`${head} ${String(m * 0.01).padStart(10)}       cache-misses: `);
      }
    }
  }
  return out.join('\n') + '\n';
}

describe('README walk-through: from perf record to an energy matrix', () => {
  it('import perf-script, calibrate --into the imported profile, replay: the matrix is what the weights say', async () => {
    const dir = tmpDir();
    const io = bufferIO();
    const run = async (...args: string[]) => {
      const code = await main(args, io);
      expect(code, io.stderr.join('\n')).toBe(0);
    };
    const at = (f: string) => path.join(dir, f);
    fs.writeFileSync(at('perf.txt'), perfScript());
    fs.writeFileSync(at('stat.csv'), perfStat());
    fs.writeFileSync(at('map.json'), JSON.stringify({ vms: { vm1: ['^vm1_cpu$'], vm2: ['^vm2_cpu$'] }, default: 'host' }));
    await run('import', 'perf-script', at('perf.txt'), '--out', at('host'), '--map', at('map.json'));
    await run('calibrate', '--samples', at('stat.csv'), '--target', 'power/energy-pkg/', '--into', at('host/machine.json'));
    fs.writeFileSync(at('host/pipeline.json'), JSON.stringify({ name: 'host', profile: 'machine.json', traces: { cswitch: 'cswitch.csv' }, stages: ['cpu-split'] }));
    await run('replay', at('host/pipeline.json'), '--db', at('host.sqlite'), '--quiet');
    io.stdout.length = 0;
    await run('matrix', '--db', at('host.sqlite'), '--format', 'csv', '--unit', 'J');
    // consumer,via,device,kind,joules,watts
    const rows = io.stdout.join('\n').trim().split('\n').slice(1).map((l) => l.split(','));
    const joules = (consumer: string | null, kind: string) => rows.filter((r) => (consumer === null || r[0] === consumer) && r[2] === 'cpu' && r[3] === kind).reduce((a, r) => a + Number(r[4]), 0);
    // Active energy by the calibrated weights: vm1 ran 1 s at 2.6e9·2e-9 + 5e9·1e-9 + 1e6·5e-8 =
    // 10.25 W of access power, vm2 at half that: 5.125 J.
    expect(Math.abs(joules('vm1', 'active') / 10.25 - 1)).toBeLessThan(1e-4);
    expect(Math.abs(joules('vm2', 'active') / 5.125 - 1)).toBeLessThan(1e-4);
    // Idle: 8 W per CPU (the fit's 16 W over the 2 CPUs of perf stat -A), 2 CPUs, 2 s: 32 J.
    expect(Math.abs(joules(null, 'idle') / 32 - 1)).toBeLessThan(1e-4);
  });
});
