import type { JournalStore } from '../runtime/journal.js';

/** What the regions' journals say of federated training (the `training.*` notes), for a simulation's summary. */
export interface TrainingFigures {
  /** Federated jobs a region took in, and how they ended (open: still training at the end). */
  readonly federatedJobs: number;
  readonly federatedEnded: Record<string, number>;
  readonly federatedOpen: number;
  /** Rounds closed (by quorum or deadline) and aggregated. */
  readonly roundsClosed: number;
  readonly roundsAggregated: number;
  /** Participants left out of a closed round (late or silent), and those dropped for going silent. */
  readonly stragglers: number;
  readonly dropped: number;
  /** Jobs with at least two aggregates, and of those the ones whose held-out accuracy rose from the first to the last. */
  readonly jobsWithTwoRounds: number;
  readonly jobsAccuracyRose: number;
  /** Mean held-out accuracy of the first and the last aggregate over those jobs (null when none). */
  readonly meanFirstAccuracy: number | null;
  readonly meanLastAccuracy: number | null;
}

export function trainingFigures(store: JournalStore, geozones: readonly string[]): TrainingFigures {
  const accuracies = new Map<string, number[]>();
  const ended: Record<string, number> = {};
  let jobs = 0;
  let endedCount = 0;
  let closed = 0;
  let aggregated = 0;
  let stragglers = 0;
  let dropped = 0;
  for (const geozone of geozones) {
    for (const record of store.journal(geozone).read(0)) {
      const e = record.event as Record<string, unknown> & { type: string };
      switch (e.type) {
        case 'training.job':
          jobs++;
          if (e['state'] === 'failed') {
            ended['failed'] = (ended['failed'] ?? 0) + 1;
            endedCount++;
          }
          break;
        case 'training.ended': {
          const state = String(e['state']);
          ended[state] = (ended[state] ?? 0) + 1;
          endedCount++;
          break;
        }
        case 'training.closed':
          closed++;
          stragglers += Array.isArray(e['stragglers']) ? e['stragglers'].length : 0;
          break;
        case 'training.dropped':
          dropped++;
          break;
        case 'training.aggregated': {
          aggregated++;
          const key = `${geozone}/${String(e['jobId'])}`;
          accuracies.set(key, [...(accuracies.get(key) ?? []), e['accuracy'] as number]);
          break;
        }
      }
    }
  }
  const series = [...accuracies.values()].filter((a) => a.length >= 2);
  const mean = (values: number[]): number | null => (values.length === 0 ? null : Math.round((values.reduce((x, y) => x + y, 0) / values.length) * 1e4) / 1e4);
  return {
    federatedJobs: jobs,
    federatedEnded: ended,
    federatedOpen: jobs - endedCount,
    roundsClosed: closed,
    roundsAggregated: aggregated,
    stragglers,
    dropped,
    jobsWithTwoRounds: series.length,
    jobsAccuracyRose: series.filter((a) => (a.at(-1) as number) > (a[0] as number)).length,
    meanFirstAccuracy: mean(series.map((a) => a[0] as number)),
    meanLastAccuracy: mean(series.map((a) => a.at(-1) as number)),
  };
}
