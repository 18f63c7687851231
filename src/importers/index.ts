/** Every importer `wattrace import` dispatches on, by format name. */
import { blkparseImporter } from './blkparse.js';
import { DISK_FORMATS, diskImporter } from './disk.js';
import { ftraceImporter } from './ftrace.js';
import type { Importer } from './importer.js';
import { perfScriptImporter } from './perf-script.js';
import { planetlabImporter } from './planetlab.js';

export const IMPORTERS: ReadonlyMap<string, Importer> = new Map(
  [...DISK_FORMATS.map(diskImporter), blkparseImporter, perfScriptImporter, ftraceImporter, planetlabImporter].map((i) => [i.format, i]),
);
