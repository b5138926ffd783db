import { readFileSync } from 'node:fs';

/** Linux reports thread CPU in clock ticks; 100 a second on every Linux Node supports. */
const TICKS_PER_SEC = 100;

/**
 * CPU time (user + system, ms, 10 ms resolution) of the calling thread, from
 * /proc/thread-self/stat; undefined where there is no such file (not Linux).
 * process.cpuUsage() sums every thread of the process, so it cannot say which
 * worker is the bottleneck; this can, on a machine shared with other work too.
 */
export function threadCpuMs(): number | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/thread-self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces), from field 3: utime is the 14th field, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_SEC : undefined;
}
