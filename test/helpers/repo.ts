import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest folder up from this (compiled) file that
 * holds scripts/kafka/kafka.mjs (tests run from dist/, the scripts and the
 * local broker's .kafka folder live at the root).
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'scripts', 'kafka', 'kafka.mjs'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('no scripts/kafka/kafka.mjs above the test helpers');
    dir = parent;
  }
  return dir;
}
