import { ArcError, ErrorCodes } from '../runtime/errors.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses durations like "250ms", "90s", "20m", "1h" (a bare number is seconds). */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) {
    throw new ArcError(ErrorCodes.USAGE, `cannot read duration '${text}': use a number with ms, s, m or h (e.g. 90s, 20m, 1h)`);
  }
  return Math.round(Number(match[1]) * (units[match[2] ?? 's'] as number));
}
