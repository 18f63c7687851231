/** The tool version written into every run (runs.tool_version), read from package.json. */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './json.js';

export const TOOL_VERSION: string = (
  JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
