import cliProgress from 'cli-progress';
import type { RegionStats } from '../actors/region-stats.js';

/** A progress bar on stderr for long simulations (plain periodic lines when stderr is not a terminal). */
export function createProgress(enabled: boolean): { update: (fraction: number, stats: RegionStats) => void; stop: () => void } {
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'sim [{bar}] {percentage}% | requests {requests} | routed {routed} | expired {expired} | timeouts {timeouts} | eta {eta}s',
      noTTYOutput: true,
      notTTYSchedule: 5000,
      hideCursor: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1000, 0, { requests: 0, routed: 0, expired: 0, timeouts: 0 });
  return {
    update: (fraction, stats) =>
      bar.update(Math.round(fraction * 1000), { requests: stats.requests, routed: stats.routed, expired: stats.expired, timeouts: stats.nodeTimeouts }),
    stop: () => bar.stop(),
  };
}
