/** `wattrace generate <scenario> --out DIR [--seed N]`: a built-in scenario's files (README.md, generate). */
import fs from 'node:fs';
import path from 'node:path';
import { WattraceError } from '../core/errors.js';
import { SCENARIOS, type ScenarioOptions } from '../generate/scenarios.js';
import type { IO } from './io.js';

export interface GenerateArgs extends Partial<ScenarioOptions> {
  scenario: string;
  out: string;
}

export function generate(args: GenerateArgs, io: IO): void {
  const sc = SCENARIOS[args.scenario];
  if (!sc) throw new WattraceError('E_USAGE', `unknown scenario '${args.scenario}'; the built-in ones are ${Object.keys(SCENARIOS).join(', ')}`);
  const seed = args.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new WattraceError('E_USAGE', `--seed must be an integer from 0 to 2^32 − 1; got ${seed}`);
  if (args.out.trim() === '') throw new WattraceError('E_USAGE', '--out must name a folder');
  if (fs.existsSync(args.out) && !fs.statSync(args.out).isDirectory()) throw new WattraceError('E_USAGE', `--out ${args.out} exists and is not a folder`);
  for (const [k, v] of Object.entries({ seconds: args.seconds, 'idle-watts': args.idleWatts, 'disk-active-watts': args.diskActiveWatts, 'disk-idle-watts': args.diskIdleWatts, 'disk-rate-mbps': args.diskRateMBps })) {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new WattraceError('E_USAGE', `--${k} must be a positive number; got ${v}`);
  }
if (args.seconds !== undefined && args.scenario === 'paper-fig7' && args.seconds < 0.5) {
    throw new WattraceError('E_USAGE', `paper-fig7 needs --seconds of 0.5 or more (a 150 ms quiet start, then the stress test); got ${args.seconds}`);
  }
  if ((args.diskActiveWatts ?? 5.6) < (args.diskIdleWatts ?? 3.6)) throw new WattraceError('E_USAGE', 'the disk cannot draw less power active than idle');
  const built = sc.build({ ...args, seed });
  for (const [rel, text] of built.files) {
    const f = path.join(args.out, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text);
  }
  io.out(`${args.scenario} (seed ${seed}): ${built.summary}; ${built.files.size} files → ${args.out}`);
  io.out(`replay it: wattrace replay ${path.join(args.out, 'pipeline.json')}`);
}
