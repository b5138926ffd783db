import test from 'ava';
import { join } from 'node:path';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { InvariantChecker } from '../../simulations/invariants.js';
import { replayJournal } from '../../simulations/replay.js';
import { runSimulation, type SimulationOptions, type SimulationResult } from '../../simulations/run-simulation.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * `arcnet sim` with the central orchestrator and federated training: a dozen
 * simulated minutes, a small fleet, training jobs on both paths with the forced
 * HPC faults (a stalled transfer, a failed batch job, a lost queue node, a job
 * cancelled by its submitter) and the fleet's training faults.
 */
const base: Omit<SimulationOptions, 'journalDir' | 'checkpointDir'> = {
  seed: 3,
  nodes: 24,
  geozones: ['CAISO', 'ERCOT', 'PJM'],
  durationMs: 12 * 60_000,
  ratePerSec: 1,
  faults: true,
  training: true,
  jobsPerHour: 60,
};

const { dir, cleanup } = tempDir('arcnet-pattern3-');
test.after.always(cleanup);
const checkpointDir = join(dir, 'checkpoints');
let first: Promise<SimulationResult> | undefined;
/** One run shared by the tests that read it (the run is the expensive part). */
const run = (): Promise<SimulationResult> => (first ??= runSimulation({ ...base, journalDir: join(dir, 'a'), checkpointDir }));

function records(journalDir: string, shardId: string): JournalRecord[] {
  const store = new LmdbStore(journalDir);
  try {
    return [...store.journal(shardId).read(0)];
  } finally {
    void store.close();
  }
}

function byRule(shards: Record<string, JournalRecord[]>): Record<string, number> {
  const checker = new InvariantChecker();
  for (const [shardId, list] of Object.entries(shards)) checker.checkShard(shardId, list);
  return checker.finish().byRule;
}

test.serial('jobs take both paths and end as their faults say; rounds complete and accuracy rises; no rule is broken', async (t) => {
  const result = await run();
  t.is(result.invariantViolations, 0, JSON.stringify(result.firstViolations));
  const training = result.training;
  if (training === undefined) return t.fail('no training summary');
  const jobs = training.jobs;
  if (jobs === null) return t.fail('no job tally');
  t.true(jobs.classified.hpc >= 5 && jobs.classified.federated >= 3, JSON.stringify(jobs));
  t.is(training.refusedTrainingMessages, 0, 'the fleet speaks the wire formats the edge takes');
  t.is(training.hpcPortErrors, 0);

  // The orchestrator's journal: how each HPC job ended, and why.
  const central = records(join(dir, 'a'), 'CENTRAL');
  const reasons = new Set(central.filter((r) => r.event.type === 'job.classified').map((r) => r.event['reason'] as string));
  for (const reason of ['estimatedFlops > 1e18', 'datasetSizeGb > 100', 'urgency = critical', 'no HPC rule matched']) t.true(reasons.has(reason), reason);
  t.true([...reasons].some((r) => r.startsWith('dataset-uri not readable by a region')), [...reasons].join('; '));
  const ends = central
    .filter((r) => r.event.type === 'job.ended')
    .map((r) => {
      const context = r.event['context'] as { failureReason: string | null; failureDetail: string | null };
      return `${r.event['state'] as string}:${context.failureReason ?? ''}:${(context.failureDetail ?? '').split(':')[0] ?? ''}`;
    });
  t.true(ends.includes('failed:transfer-stalled:'), ends.join(' '));
  t.true(ends.includes('failed:job-failed:FAILED'), ends.join(' '));
  t.true(ends.includes('failed:job-failed:NODE_FAIL'), ends.join(' '));
  t.true(ends.some((e) => e.startsWith('cancelled:')), ends.join(' '));
  t.true(ends.some((e) => e.startsWith('completed:')), ends.join(' '));
  // The HPC path's progress is journaled as the copy goes.
  t.true(central.filter((r) => r.event.type === 'transfer.progress').length >= 3);

  // Federated jobs reached the regions, whose fleet trained them through faults.
  t.true(jobs.placed >= 3);
  t.true((training.federatedEnded['done'] ?? 0) >= 3, JSON.stringify(training.federatedEnded));
  t.true(training.roundsAggregated >= 9);
  t.true(training.fleetFaults.stragglers + training.fleetFaults.dropouts > 0 && training.fleetFaults.silentMidRound > 0, JSON.stringify(training.fleetFaults));
  t.true(training.stragglers > 0, 'some round closed at its deadline without a participant');
  t.true(training.jobsAccuracyRose >= 3, `${training.jobsAccuracyRose} of ${training.jobsWithTwoRounds}`);
  t.true((training.meanLastAccuracy ?? 0) > (training.meanFirstAccuracy ?? 1), `${training.meanFirstAccuracy} → ${training.meanLastAccuracy}`);
});

test.serial('the same seed gives the same journal and hash in another folder; replay of the folder (orchestrator included) gives the live hash', async (t) => {
  const a = await run();
  const b = await runSimulation({ ...base, journalDir: join(dir, 'b'), checkpointDir });
  t.is(b.stateHash, a.stateHash);
  t.is(b.journalDigest, a.journalDigest);
  const replayed = await replayJournal(join(dir, 'a'));
  t.deepEqual(replayed.geozones, ['CAISO', 'CENTRAL', 'ERCOT', 'PJM']);
  t.is(replayed.stateHash, a.stateHash);
  t.is(replayed.journalDigest, a.journalDigest);
  // Replay reads the stored weights: every aggregate is FedAvg of its counted updates.
  t.is(replayed.invariantViolations, 0, JSON.stringify(replayed.violationsByRule));
});

test.serial('each orchestrator rule fails on a journal tampered to break it', async (t) => {
  await run();
  const central = records(join(dir, 'a'), 'CENTRAL');
  t.deepEqual(byRule({ CENTRAL: central }), {}, 'the real journal is clean');
  const endedNote = central.find((r) => r.event.type === 'job.ended' && r.event['state'] === 'completed');
  if (endedNote === undefined) return t.fail('no completed job');
  const jobId = endedNote.event['jobId'] as string;
  const actorId = `hpc-job/${jobId}`;
  const at = (pred: (r: JournalRecord) => boolean): number => {
    const i = central.findIndex(pred);
    if (i < 0) throw new Error('record not found');
    return i;
  };
  const withEvent = (r: JournalRecord, change: Record<string, unknown>): JournalRecord => ({ ...r, event: { ...r.event, ...change } });

  // Ended twice: the end note again.
  const twice = [...central];
  twice.splice(at((r) => r === endedNote) + 1, 0, endedNote);
  t.is(byRule({ CENTRAL: twice })['job-not-ended-once'], 1);

  // Queued before verified: the transfer's completion removed, so the queue submission comes first.
  const unverified = central.filter((r) => !(r.actorId === actorId && r.event.type === 'transfer.completed'));
  t.true((byRule({ CENTRAL: unverified })['job-queued-before-verified'] ?? 0) >= 1);

  // Progress backwards: a second progress record lower than the first.
  const progressAt = at((r) => r.actorId === actorId && r.event.type === 'transfer.progress');
  const progress = central[progressAt] as JournalRecord;
  const backwards = [...central];
  backwards.splice(progressAt + 1, 0, withEvent(progress, { bytesTransferred: (progress.event['bytesTransferred'] as number) - 1 }));
  t.is(byRule({ CENTRAL: backwards })['job-progress-backwards'], 1);

  // Two queue submissions for one job.
  const submittedAt = at((r) => r.actorId === actorId && r.event.type === 'queue.submitted');
  const doubled = [...central];
  doubled.splice(submittedAt + 1, 0, withEvent(central[submittedAt] as JournalRecord, { schedulerJobId: '999' }));
  t.true((byRule({ CENTRAL: doubled })['job-two-queue-submissions'] ?? 0) >= 1);

  // Classification against the rule: a job over 1e18 FLOPs journaled as federated.
  const hpcClassified = at((r) => r.event.type === 'job.classified' && r.event['reason'] === 'estimatedFlops > 1e18');
  const misclassified = [...central];
  misclassified[hpcClassified] = withEvent(central[hpcClassified] as JournalRecord, { target: 'federated' });
  t.true((byRule({ CENTRAL: misclassified })['job-classification-wrong'] ?? 0) >= 1);
  // And a small readable job journaled as HPC.
  const fedClassified = at((r) => r.event.type === 'job.classified' && r.event['target'] === 'federated');
  const overclassified = [...central];
  overclassified[fedClassified] = withEvent(central[fedClassified] as JournalRecord, { target: 'hpc' });
  t.is(byRule({ CENTRAL: overclassified })['job-classification-wrong'], 1);
});

test.serial('restarts mid-run recover the orchestrator and the regions exactly, and break no rule', async (t) => {
  const startMs = 1_767_225_600_000;
  const result = await runSimulation({ ...base, journalDir: join(dir, 'restarted'), checkpointDir, restartAtMs: [startMs + 5 * 60_000, startMs + 400_500] });
  t.is(result.invariantViolations, 0, JSON.stringify(result.firstViolations));
  t.is(result.restarts?.length, 2);
  for (const restart of result.restarts ?? []) {
    t.is(restart.stateHashAfter, restart.stateHashBefore);
    t.true((restart.offsets['CENTRAL'] ?? -1) >= 0, 'the orchestrator recovered from its snapshot');
  }
  t.true((result.training?.federatedEnded['done'] ?? 0) >= 3);
  const replayed = await replayJournal(join(dir, 'restarted'));
  t.is(replayed.stateHash, result.stateHash);
  t.is(replayed.invariantViolations, 0);
});
