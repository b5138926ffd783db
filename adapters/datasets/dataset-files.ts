import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { DatasetFormatError, parseDigitsCsv, type Dataset } from '../../training/dataset.js';

/**
 * Loads the data sets a FederatedTask may name: `builtin:digits` (shipped in
 * datasets/digits/) or a `file:` URI of a CSV in the same format, gzipped when
 * it ends in `.gz`. Loaded once per URI and kept (they are small and read-only).
 */

/** A user's file larger than this is refused before it is read. */
export const MAX_DATASET_FILE_BYTES = 64 * 1024 * 1024;

const BUILTIN: Readonly<Record<string, string>> = { digits: join('datasets', 'digits', 'digits.csv.gz') };

const cache = new Map<string, Dataset>();

/** The checkout's root: the nearest folder up from this file holding datasets/ (runs from dist/ or the sources). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if (statSync(join(dir, 'datasets', 'digits')).isDirectory()) return dir;
    } catch {
      // not here: go up
    }
    const parent = dirname(dir);
    if (parent === dir) throw new ArcError(ErrorCodes.DATASET, 'the shipped datasets/ folder is missing from this installation');
    dir = parent;
  }
}

export function isSupportedDatasetUri(uri: string): boolean {
  return uri.startsWith('file:') || (uri.startsWith('builtin:') && BUILTIN[uri.slice('builtin:'.length)] !== undefined);
}

export function loadDataset(uri: string): Dataset {
  const cached = cache.get(uri);
  if (cached !== undefined) return cached;
  let path: string;
  if (uri.startsWith('builtin:')) {
    const relative = BUILTIN[uri.slice('builtin:'.length)];
    if (relative === undefined) throw new ArcError(ErrorCodes.DATASET, `no built-in data set '${uri}'; the built-in ones are ${Object.keys(BUILTIN).map((n) => `builtin:${n}`).join(', ')}`);
    path = join(repoRoot(), relative);
  } else if (uri.startsWith('file:')) {
    path = fileURLToPath(uri);
  } else {
    throw new ArcError(ErrorCodes.DATASET, `data set URI '${uri}' is neither builtin: nor file:`);
  }
  try {
    const size = statSync(path).size;
    if (size > MAX_DATASET_FILE_BYTES) throw new ArcError(ErrorCodes.DATASET, `data set file ${path} has ${size} bytes; at most ${MAX_DATASET_FILE_BYTES} are read`);
    const raw = readFileSync(path);
    const text = (path.endsWith('.gz') ? gunzipSync(raw, { maxOutputLength: 8 * MAX_DATASET_FILE_BYTES }) : raw).toString('utf8');
    const dataset = parseDigitsCsv(text);
    cache.set(uri, dataset);
    return dataset;
  } catch (error) {
    if (error instanceof ArcError) throw error;
    const why = error instanceof DatasetFormatError ? error.message : `it could not be read (${error instanceof Error ? error.message : String(error)})`;
    throw new ArcError(ErrorCodes.DATASET, `data set '${uri}': ${why}`, undefined, { cause: error });
  }
}
