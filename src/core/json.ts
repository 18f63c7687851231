/** Reading JSON files with errors that say where, and validating them against `schemas/`. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { WattraceError } from './errors.js';

/** The project root: `schemas/` lives beside `src/` and `dist/`. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCHEMA_DIR = path.join(PROJECT_ROOT, 'schemas');

export function readTextFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? String(e)})`;
    throw new WattraceError('E_FILE', `${what} ${why}`, { file });
  }
}

/**
 * Parses JSON; a syntax error names the line and column where it was found (located with
 * jsonc-parser in strict mode, since V8's messages do not always carry a position).
 */
export function readJsonFile(file: string, what: string): unknown {
  // A UTF-8 byte-order mark (some editors write one) is not part of the JSON.
  const text = readTextFile(file, what).replace(/^\ufeff/, '');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const errors: ParseError[] = [];
    parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    if (first) {
      const before = text.slice(0, first.offset);
      const line = before.split('\n').length;
      const column = first.offset - before.lastIndexOf('\n');
      throw new WattraceError('E_JSON', `${what} is not valid JSON: ${printParseErrorCode(first.error)}`, { file, line, column });
    }
    throw new WattraceError('E_JSON', `${what} is not valid JSON: ${(e as Error).message}`, { file });
  }
}

// The schemas are ours and a test checks them against the JSON Schema meta-schema, so they are
// not re-validated on every start (that costs ~50 ms).
const ajv = new Ajv2020({ allErrors: true, strict: true, useDefaults: true, validateSchema: false, verbose: true });
const validators = new Map<string, ValidateFunction>();

function validatorFor(schemaFile: string): ValidateFunction {
  let v = validators.get(schemaFile);
  if (!v) {
    const schema = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, schemaFile), 'utf8')) as object;
    v = ajv.compile(schema);
    validators.set(schemaFile, v);
  }
  return v;
}

function describe(err: ErrorObject): string {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return `missing required key '${String(p['missingProperty'])}'`;
    case 'additionalProperties':
      return `unknown key '${String(p['additionalProperty'])}'`;
    case 'enum':
      return `must be one of ${(p['allowedValues'] as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
    case 'propertyNames':
      return `invalid key '${String(p['propertyName'])}'`;
    case 'not':
      return err.parentSchema && typeof (err.parentSchema as { description?: unknown }).description === 'string'
        ? `not allowed here: ${(err.parentSchema as { description: string }).description}`
        : 'is not allowed here';
    case 'anyOf':
      return err.parentSchema && typeof (err.parentSchema as { $comment?: unknown }).$comment === 'string' ? String((err.parentSchema as { $comment: string }).$comment) : 'matches none of the allowed forms';
    default:
      return err.message ?? err.keyword;
  }
}

/**
 * Validates `data` against `schemas/<schemaFile>` (filling in schema defaults) and throws one
 * error naming the file and the JSON path of the first problem, with the others listed after it.
 */
export function validateAgainst<T>(data: unknown, schemaFile: string, file: string, what: string): T {
  const validate = validatorFor(schemaFile);
  if (validate(data)) return data as T;
  // The errors of an `anyOf`'s branches only explain it: keep the anyOf's own, worded, error.
  const raw = validate.errors ?? [];
  const branches = new Set(raw.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath));
  const errors = raw.filter((e) => ![...branches].some((b) => e.schemaPath.startsWith(`${b}/`)));
  const seen = new Set<string>();
  const lines: { path: string; text: string }[] = [];
  for (const e of errors) {
    const key = `${e.instancePath}|${describe(e)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    lines.push({ path: e.instancePath, text: describe(e) });
  }
  const first = lines[0] ?? { path: '', text: 'invalid' };
  const more = lines.length > 1 ? ` (and ${lines.length - 1} more: ${lines.slice(1, 4).map((l) => `${l.path || '/'}: ${l.text}`).join('; ')})` : '';
  throw new WattraceError('E_SCHEMA', `${what}: ${first.text}${more}`, { file, path: first.path });
}
