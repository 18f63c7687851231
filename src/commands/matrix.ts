/** `wattrace matrix --db FILE [--run N]`: the energy matrix of a stored run. */
import { matrixCells, pivotMatrix, renderMatrix, resolveRun, validationOf, type MatrixUnit } from '../analysis/matrix.js';
import { openForReading } from '../store/store.js';
import type { IO } from './io.js';
import { WattraceError } from '../core/errors.js';

export interface MatrixArgs {
  db: string;
  run?: number | undefined;
  format?: 'table' | 'json' | 'csv' | undefined;
  unit?: MatrixUnit | undefined;
}

export function matrix(args: MatrixArgs, io: IO): void {
  if (args.run !== undefined && !(Number.isInteger(args.run) && args.run > 0)) {
    throw new WattraceError('E_USAGE', `--run must be a run id (a positive integer); got ${args.run}`);
  }
  const db = openForReading(args.db);
  try {
    const info = resolveRun(db, args.run, args.db);
    const cells = matrixCells(db, info.run_id);
    switch (args.format ?? 'table') {
      case 'table':
        io.out(renderMatrix(info, cells, args.unit, validationOf(db, info.run_id)));
        break;
      case 'json':
        io.out(JSON.stringify({ run: info, cells, matrix: pivotMatrix(cells), validation: validationOf(db, info.run_id) }, null, 2));
        break;
      case 'csv':
        io.out(
          ['consumer,via,device,kind,joules,watts', ...cells.map((c) => [c.consumer, c.via ?? '', c.device, c.kind, c.joules, c.watts].join(','))].join('\n'),
        );
        break;
    }
  } finally {
    db.close();
  }
}
