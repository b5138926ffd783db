import type { ExecutionContext } from 'ava';
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Prometheus's promtool, for checking the /metrics exposition the way
 * Prometheus itself parses it. `scripts/fetch-promtool.sh` (run by pretest and
 * .ci/run) puts it at .tools/promtool; PROMTOOL or the PATH also work. Without
 * it the test is skipped with a notice, except under CI=true.
 */
const candidates = [process.env['PROMTOOL'], fileURLToPath(new URL('../../../.tools/promtool', import.meta.url)), 'promtool'];

export const promtool = candidates.find((path) => path !== undefined && (path === 'promtool' ? spawnSync('promtool', ['--version']).status === 0 : existsSync(path)));

export function promtoolTest(title: string, fn: (t: ExecutionContext, promtool: string) => Promise<void>): void {
  if (promtool !== undefined) {
    test(title, (t) => fn(t, promtool));
  } else if (process.env['CI'] === 'true') {
    test(title, (t) => {
      t.fail('promtool not found (scripts/fetch-promtool.sh); under CI=true that is a failure');
    });
  } else {
    console.warn(`promtool test skipped: run scripts/fetch-promtool.sh or set PROMTOOL: ${title}`);
    test.skip(`${title} (SKIPPED: no promtool)`, () => undefined);
  }
}
