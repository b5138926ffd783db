import test from 'ava';
import type { NodeContext, NodeStatus } from '../../machines/node.js';
import { chooseParticipants } from '../../actors/participant-ranking.js';
import { defaultTrainingConfig, TrainingCoordinator } from '../../actors/training-coordinator.js';
import type { JournalRecord } from '../../runtime/journal.js';

function node(nodeId: string, energySource: 'cogen' | 'grid' | 'battery', gpuUtilization: number, overrides: Partial<NodeContext> = {}, status: NodeStatus = 'online'): { status: NodeStatus; context: NodeContext } {
  return { status, context: { nodeId, energySource, gpuUtilization, batteryLevel: 0.9, ...overrides } as NodeContext };
}

test('participants: only online nodes under the GPU threshold and above 20 % battery on battery, ranked cogen > grid > battery, then GPU, then id', (t) => {
  const nodes = [
    node('g-b', 'grid', 0.3),
    node('g-a', 'grid', 0.3),
    node('c-busy', 'cogen', 0.9),
    node('b-low', 'battery', 0.1, { batteryLevel: 0.2 }),
    node('b-ok', 'battery', 0.05, { batteryLevel: 0.5 }),
    node('c-1', 'cogen', 0.5),
    node('g-idle', 'grid', 0.1),
    node('drain', 'cogen', 0.1, {}, 'draining'),
    node('off', 'cogen', 0.1, {}, 'offline'),
  ];
  const all = chooseParticipants(nodes, 10, 0.85);
  t.deepEqual(all.chosen.map((p) => p.nodeId), ['c-1', 'g-idle', 'g-a', 'g-b', 'b-ok']);
  t.is(all.eligible, 5);
  t.regex(all.reason, /best 5 of 5 eligible/);
  // The same whatever order the nodes come in, and the best first when fewer are wanted.
  t.deepEqual(chooseParticipants([...nodes].reverse(), 2, 0.85).chosen.map((p) => p.nodeId), ['c-1', 'g-idle']);
  // A lower threshold leaves out the busier ones.
  t.deepEqual(chooseParticipants(nodes, 10, 0.3).chosen.map((p) => p.nodeId), ['g-idle', 'b-ok']);
});

let offset = 0;
const note = (event: Record<string, unknown>): JournalRecord => ({ offset: offset++, atMs: offset * 10, actorId: '@shard', kind: '@shard', event: event as JournalRecord['event'], state: '' });
const spec = (jobId: string) => ({ jobId, geozone: 'CAISO', minParticipants: 1, rounds: 2 });

test('a step that is undone leaves the job views exactly as they were (same content, same order)', (t) => {
  const coordinator = new TrainingCoordinator('CAISO', { ...defaultTrainingConfig, maxTrainingJobsKept: 2 }, () => []);
  const kept = [
    note({ type: 'training.job', spec: spec('a'), participants: [], eligible: 1, reason: 'r', state: 'training', failureReason: null, failureDetail: null }),
    note({ type: 'training.round', jobId: 'a', round: 1, deadlineAtMs: 100, startWeightsSha256: null }),
    note({ type: 'training.update', jobId: 'a', round: 1, nodeId: 'n1', sampleCount: 5, weightsSha256: 'a'.repeat(64), loss: 1, accuracy: 0.5 }),
    note({ type: 'training.job', spec: spec('b'), participants: [], eligible: 0, reason: 'r', state: 'failed', failureReason: 'quorum-not-reached', failureDetail: 'none' }),
  ];
  coordinator.beginStep();
  for (const record of kept) coordinator.applyNote(record);
  coordinator.endStep(true);
  const before = JSON.stringify(coordinator.saveState());
  coordinator.beginStep();
  for (const record of [
    note({ type: 'training.update', jobId: 'a', round: 1, nodeId: 'n2', sampleCount: 5, weightsSha256: 'b'.repeat(64), loss: 1, accuracy: 0.5 }),
    note({ type: 'training.closed', jobId: 'a', round: 1, stragglers: ['n3'] }),
    note({ type: 'training.aggregated', jobId: 'a', round: 1, weightsSha256: 'c'.repeat(64), accuracy: 0.9, loss: 0.2 }),
    note({ type: 'training.ended', jobId: 'a', state: 'failed', reason: 'x', detail: null }),
    // A third job: past the limit of 2, the oldest ended one (a, ended just now) is forgotten.
    note({ type: 'training.job', spec: spec('c'), participants: [], eligible: 1, reason: 'r', state: 'training', failureReason: null, failureDetail: null }),
  ]) {
    coordinator.applyNote(record);
  }
  t.is(coordinator.view('a'), undefined, 'forgotten within the step');
  t.deepEqual(coordinator.jobIds(), ['b', 'c']);
  t.not(JSON.stringify(coordinator.saveState()), before);
  coordinator.endStep(false);
  t.is(JSON.stringify(coordinator.saveState()), before);
  t.deepEqual(coordinator.jobIds(), ['a', 'b']);
});

test('views saved before rounds recorded closed-by and late load with those as unknown, and take late notes again', (t) => {
  const coordinator = new TrainingCoordinator('CAISO', defaultTrainingConfig, () => []);
  const oldRound = { round: 1, startedAtMs: 0, deadlineAtMs: 100, startWeightsSha256: null, updates: [], dropped: [], stragglers: ['n3'], closedAtMs: 50, aggregateSha256: null, accuracy: null, loss: null, checkpointUri: null, checkpointSha256: null };
  coordinator.loadState([{ jobId: 'old', geozone: 'CAISO', spec: spec('old'), acceptedAtMs: 0, participants: [], selection: { eligible: 3, reason: 'r' }, state: 'training', failureReason: null, failureDetail: null, endedAtMs: null, rounds: [oldRound] }]);
  t.like(coordinator.view('old')?.rounds[0], { late: [], closedBy: null, stragglers: ['n3'] });
  coordinator.applyNote(note({ type: 'training.late', jobId: 'old', round: 1, nodeId: 'n3' }));
  t.deepEqual(coordinator.view('old')?.rounds[0]?.late, ['n3']);
});
