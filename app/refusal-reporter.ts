import type { Refusal, RefusalContext } from '../adapters/http/access.js';

/** What one reported refusal says (never the key itself, only its id when it was a valid key). */
export interface RefusalReport {
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/**
 * Refusals (401/403/429 on the HTTP API, the console or the agent channel) are
 * reported at most `perSecond` a second: a flood of bad requests, which no key's
 * budget limits, must not become a flood of log lines and events. The next report
 * says how many were left out.
 */
export function refusalReporter(perSecond: number, wallNowMs: () => number, report: (refusal: RefusalReport) => void): (refusal: Refusal, context: RefusalContext) => void {
  const window = { startedMs: 0, reported: 0, suppressed: 0 };
  return (refusal, context) => {
    const nowMs = wallNowMs();
    if (nowMs - window.startedMs >= 1_000) {
      window.startedMs = nowMs;
      window.reported = 0;
    }
    if (window.reported >= perSecond) {
      window.suppressed++;
      return;
    }
    window.reported++;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    const details = {
      status: refusal.status,
      code: refusal.code,
      method: context.method,
      path: context.path,
      ...(context.keyId === undefined ? {} : { keyId: context.keyId }),
      ...(suppressed === 0 ? {} : { notReportedBefore: suppressed }),
    };
    const message = refusal.status === 401 ? 'request refused: no valid API key' : refusal.status === 403 ? 'request refused: not allowed for this key' : 'request refused: rate limit';
    report({ message, details });
  };
}
