import test from 'ava';
import type { RegionEffect } from '../../actors/region-io.js';
import { ConsoleFeed, geozoneReferenceGeohash, requestSource, type ActorLookup } from '../../adapters/console/console-feed.js';
import { consoleMessageSchema, type ConsoleMessage, type InferenceMessage } from '../../adapters/console/console-messages.js';
import type { JournalEvent, JournalRecord } from '../../runtime/journal.js';
import { decodeGeohash } from '../../actors/geohash.js';

const T0 = 1_767_225_600_000;

/** Hand-written journal records, shaped as the region writes them. */
function journal(): { record: (actorId: string, kind: string, atMs: number, event: JournalEvent, state: string) => JournalRecord } {
  let offset = 0;
  return { record: (actorId, kind, atMs, event, state) => ({ offset: offset++, atMs, actorId, kind, event, state }) };
}

const report = {
  nodeName: 'CAISO-node-00004',
  geohash: '9rn5m4',
  geozone: 'CAISO',
  energySource: 'grid',
  batteryLevel: 0.358,
  gpuUtilization: 0.312,
  gpuCount: 4,
  modelsLoaded: ['llama-3-70b'],
  reportedAtMs: T0 + 900,
  draining: false,
};

function reservationInput(requestId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId,
    modelId: 'llama-3-70b',
    contextWindow: 4096,
    priority: 'critical',
    requesterGeozone: 'CAISO',
    triedGeozones: [],
    receivedAtMs: T0,
    reservationTtlMs: 30_000,
    maxAttempts: 3,
    ...extra,
  };
}

function valid(t: { true: (value: boolean, message?: string) => void }, messages: readonly ConsoleMessage[]): void {
  for (const message of messages) t.true(consoleMessageSchema.safeParse(message).success, JSON.stringify(message));
}

const inferences = (messages: readonly ConsoleMessage[]): InferenceMessage[] => messages.filter((m): m is InferenceMessage => m.type === 'inference');

test('a node\'s first report (@spawn) and later telemetry become telemetry messages with the seed\'s fields', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const messages = feed.fromRecords('CAISO', [
    record('node/CAISO-00004', 'node', T0, { type: '@spawn', input: { nodeId: 'CAISO-00004', report, atMs: T0, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 } }, 'online'),
    record('node/CAISO-00004', 'node', T0 + 10_537, { type: 'telemetry', atMs: T0 + 10_537, report: { ...report, gpuUtilization: 0.5, reportedAtMs: T0 + 11_419 } }, 'online'),
    // Reservation bookkeeping on the node is not telemetry.
    record('node/CAISO-00004', 'node', T0 + 11_000, { type: 'reserve', atMs: T0 + 11_000, requestId: 'r1' }, 'online'),
  ]);
  valid(t, messages);
  t.deepEqual(messages, [
    {
      type: 'telemetry',
      geozone: 'CAISO',
      node: {
        id: 'CAISO-00004',
        geohash: '9rn5m4',
        energySource: 'grid',
        batteryLevel: 0.358,
        gpuUtilization: 0.312,
        modelsLoaded: ['llama-3-70b'],
        timestamp: new Date(T0).toISOString(),
      },
    },
    {
      type: 'telemetry',
      geozone: 'CAISO',
      node: {
        id: 'CAISO-00004',
        geohash: '9rn5m4',
        energySource: 'grid',
        batteryLevel: 0.358,
        gpuUtilization: 0.5,
        modelsLoaded: ['llama-3-70b'],
        timestamp: '2026-01-01T00:00:10.537Z',
      },
    },
  ]);
});

test('route.reserved that dispatches in the same event gives the same dispatched message as reserve then dispatch', (t) => {
  const { record } = journal();
  const id = 'reservation/req-1';
  const spawn = record(id, 'reservation', T0, { type: '@spawn', input: reservationInput('req-1') }, 'requested');
  const merged = new ConsoleFeed().fromRecords('CAISO', [
    spawn,
    record(id, 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId: 'CAISO-00004', candidates: 12, reason: 'best of 12', dispatch: true }, 'dispatched'),
  ]);
  const twoRecords = new ConsoleFeed().fromRecords('CAISO', [
    spawn,
    record(id, 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId: 'CAISO-00004', candidates: 12, reason: 'best of 12' }, 'reserved'),
    record(id, 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
  ]);
  t.is(merged.length, 1);
  t.deepEqual(merged, twoRecords);
});

test('dispatch then a completed result: dispatched to the reserved node, then completed with the latency; source from the requester geohash; cache emptied', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const id = 'reservation/req-1';
  const messages = feed.fromRecords('CAISO', [
    record(id, 'reservation', T0, { type: '@spawn', input: reservationInput('req-1', { requesterGeohash: '9q9hvu' }) }, 'requested'),
    record(id, 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId: 'CAISO-00004', candidates: 12, reason: 'best of 12' }, 'reserved'),
    record(id, 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
  ]);
  t.is(feed.stats().openReservations, 1, 'open while dispatched');
  messages.push(
    ...feed.fromRecords('CAISO', [
      record(id, 'reservation', T0 + 1_300, { type: 'result', atMs: T0 + 1_300, nodeId: 'CAISO-00004', status: 'completed', latencyMs: 1_234 }, 'completed'),
    ]),
  );
  valid(t, messages);
  const source = decodeGeohash('9q9hvu');
  t.deepEqual(messages, [
    {
      type: 'inference',
      geozone: 'CAISO',
      requestId: 'req-1',
      source,
      targetNodeId: 'CAISO-00004',
      modelId: 'llama-3-70b',
      priority: 'critical',
      status: 'dispatched',
      timestamp: new Date(T0).toISOString(),
    },
    {
      type: 'inference',
      geozone: 'CAISO',
      requestId: 'req-1',
      source,
      targetNodeId: 'CAISO-00004',
      modelId: 'llama-3-70b',
      priority: 'critical',
      status: 'completed',
      latencyMs: 1_234,
      timestamp: new Date(T0 + 1_300).toISOString(),
    },
  ]);
  t.true(source[0] > -123 && source[0] < -121 && source[1] > 37 && source[1] < 38.5, 'the Bay Area, as [lng, lat]');
  t.is(feed.stats().openReservations, 0, 'the cache entry goes when the reservation ends');
});

test('without a requester geohash the source is the geozone\'s reference point; an unknown geozone falls back to [0, 0]', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const run = (requestId: string, requesterGeozone: string): InferenceMessage | undefined => {
    const id = `reservation/${requestId}`;
    return inferences(
      feed.fromRecords('ERCOT', [
        record(id, 'reservation', T0, { type: '@spawn', input: reservationInput(requestId, { requesterGeozone }) }, 'requested'),
        record(id, 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId: 'ERCOT-00001', candidates: 1, reason: 'only one' }, 'reserved'),
        record(id, 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
      ]),
    )[0];
  };
  const ercot = run('r-ercot', 'ERCOT');
  t.deepEqual(ercot?.source, decodeGeohash(geozoneReferenceGeohash['ERCOT'] as string));
  const [lng, lat] = ercot?.source ?? [0, 0];
  t.true(lng > -104 && lng < -94 && lat > 26 && lat < 35.5, 'inside the box the simulated ERCOT fleet uses');
  t.deepEqual(run('r-mars', 'MARS')?.source, [0, 0]);
  t.deepEqual(requestSource('CAISO', 'not a geohash!'), decodeGeohash(geozoneReferenceGeohash['CAISO'] as string), 'a malformed geohash falls back to the geozone');
  for (const geozone of ['CAISO', 'ERCOT', 'PJM', 'MISO', 'NYISO', 'ISO-NE', 'ISONE', 'SPP']) t.notDeepEqual(requestSource(geozone), [0, 0], geozone);
});

test('expiry, rejection, a node loss with no attempts left and a cancelled dispatch each end as failed; a re-routing node loss sends nothing', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const spawnAndDispatch = (requestId: string, nodeId: string): JournalRecord[] => {
    const id = `reservation/${requestId}`;
    return [
      record(id, 'reservation', T0, { type: '@spawn', input: reservationInput(requestId) }, 'requested'),
      record(id, 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId, candidates: 3, reason: 'best' }, 'reserved'),
      record(id, 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
    ];
  };
  const messages = feed.fromRecords('CAISO', [
    ...spawnAndDispatch('expires', 'n1'),
    record('reservation/expires', 'reservation', T0 + 30_000, { type: 'expire', atMs: T0 + 30_000 }, 'expired'),

    record('reservation/rejected', 'reservation', T0, { type: '@spawn', input: reservationInput('rejected') }, 'requested'),
    record('reservation/rejected', 'reservation', T0, { type: 'route.rejected', atMs: T0, candidates: 0, reason: 'no eligible node' }, 'rejected'),

    ...spawnAndDispatch('lost', 'n2'),
    record('reservation/lost', 'reservation', T0 + 5_000, { type: 'node.lost', atMs: T0 + 5_000, nodeId: 'n2' }, 'requested'),
    record('reservation/lost', 'reservation', T0 + 5_000, { type: 'route.reserved', atMs: T0 + 5_000, nodeId: 'n3', candidates: 2, reason: 'next best' }, 'reserved'),
    record('reservation/lost', 'reservation', T0 + 5_000, { type: 'dispatch', atMs: T0 + 5_000 }, 'dispatched'),
    record('reservation/lost', 'reservation', T0 + 9_000, { type: 'node.lost', atMs: T0 + 9_000, nodeId: 'n3' }, 'failed'),

    ...spawnAndDispatch('cancelled', 'n4'),
    record('reservation/cancelled', 'reservation', T0 + 100, { type: 'cancel', atMs: T0 + 100 }, 'released'),

    // Cancelled while waiting to be re-routed after its node died: the console saw it dispatched.
    ...spawnAndDispatch('requeued', 'n5'),
    record('reservation/requeued', 'reservation', T0 + 200, { type: 'node.lost', atMs: T0 + 200, nodeId: 'n5' }, 'requested'),
    record('reservation/requeued', 'reservation', T0 + 300, { type: 'cancel', atMs: T0 + 300 }, 'released'),

    // Cancelled before it was ever placed: the console never saw it.
    record('reservation/early', 'reservation', T0, { type: '@spawn', input: reservationInput('early') }, 'requested'),
    record('reservation/early', 'reservation', T0, { type: 'cancel', atMs: T0 }, 'released'),
  ]);
  valid(t, messages);
  const summary = inferences(messages).map((m) => `${m.requestId}:${m.status}:${m.targetNodeId}`);
  t.deepEqual(summary, [
    'expires:dispatched:n1',
    'expires:failed:n1',
    'rejected:failed:',
    'lost:dispatched:n2',
    'lost:dispatched:n3',
    'lost:failed:n3',
    'cancelled:dispatched:n4',
    'cancelled:failed:n4',
    'requeued:dispatched:n5',
    'requeued:failed:',
  ]);
  t.is(feed.stats().openReservations, 0);
  t.is(feed.stats().unmatched, 0);
});

test('a reservation forwarded to another shard ends here without a message', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const id = 'reservation/fwd';
  const messages = feed.fromRecords('CAISO', [
    record(id, 'reservation', T0, { type: '@spawn', input: reservationInput('fwd') }, 'requested'),
    record(id, 'reservation', T0, { type: 'route.forwarded', atMs: T0, toGeozone: 'ERCOT', candidates: 0, reason: 'no node' }, 'forwarding'),
    record(id, 'reservation', T0 + 5, { type: 'forward.accepted', atMs: T0 + 5 }, 'forwarded'),
  ]);
  t.deepEqual(messages, []);
  t.is(feed.stats().openReservations, 0);
});

test('after a restart the lookup supplies what the @spawn record would have; unknown reservations are counted, not invented', (t) => {
  const { record } = journal();
  const asked: string[] = [];
  const lookup: ActorLookup = (geozone, actorId) => {
    asked.push(`${geozone} ${actorId}`);
    if (actorId !== 'reservation/old') return undefined;
    return { value: 'requested', context: { ...reservationInput('old', { priority: 'background', requesterGeohash: 'dr5reg' }), nodeId: null, lostNodes: ['n9'] } };
  };
  const feed = new ConsoleFeed({ lookup });
  const messages = feed.fromRecords('PJM', [
    record('reservation/old', 'reservation', T0, { type: 'route.reserved', atMs: T0, nodeId: 'PJM-7', candidates: 1, reason: 're-route' }, 'reserved'),
    record('reservation/old', 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
    record('reservation/ghost', 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched'),
  ]);
  valid(t, messages);
  t.deepEqual(
    inferences(messages).map((m) => [m.requestId, m.status, m.targetNodeId, m.priority, m.source]),
    [['old', 'dispatched', 'PJM-7', 'background', decodeGeohash('dr5reg')]],
  );
  t.deepEqual(asked, ['PJM reservation/old', 'PJM reservation/ghost'], 'asked once per reservation it did not know, by shard');
  t.is(feed.stats().unmatched, 1);
  t.is(feed.stats().openReservations, 1);
});

test('the cache never holds more than its hard cap', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed({ maxOpenReservations: 2 });
  const spawns = ['a', 'b', 'c'].map((requestId) => record(`reservation/${requestId}`, 'reservation', T0, { type: '@spawn', input: reservationInput(requestId) }, 'requested'));
  feed.fromRecords('CAISO', spawns);
  t.is(feed.stats().openReservations, 2);
  t.is(feed.stats().evicted, 1);
  // The oldest made room: its dispatch has nothing to describe it (and no lookup here).
  t.deepEqual(feed.fromRecords('CAISO', [record('reservation/a', 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched')]), []);
  t.is(feed.fromRecords('CAISO', [record('reservation/c', 'reservation', T0, { type: 'dispatch', atMs: T0 }, 'dispatched')]).length, 1);
});

test('an HPC job\'s records become hpc messages with progress and bytes; a failure becomes a system error', (t) => {
  const { record } = journal();
  const feed = new ConsoleFeed();
  const id = 'hpc-job/job-1';
  const input = {
    jobId: 'job-1',
    datasetUri: 'globus://arc-edge/datasets/job-1',
    datasetSizeGb: 250,
    estimatedFlops: 5e18,
    urgency: 'normal',
    submittedAtMs: T0,
  };
  const messages = feed.fromRecords('CAISO', [
    record(id, 'hpc-job', T0, { type: '@spawn', input }, 'pending'),
    record(id, 'hpc-job', T0 + 1_000, { type: 'transfer.started', atMs: T0 + 1_000, transferId: 'g-9' }, 'transferring'),
    record(id, 'hpc-job', T0 + 2_000, { type: 'transfer.progress', atMs: T0 + 2_000, bytesTransferred: 125_000_000_000, progress: 0.5 }, 'transferring'),
    record(id, 'hpc-job', T0 + 3_000, { type: 'transfer.completed', atMs: T0 + 3_000 }, 'queued'),
    record(id, 'hpc-job', T0 + 4_000, { type: 'job.started', atMs: T0 + 4_000 }, 'running'),
    record(id, 'hpc-job', T0 + 5_000, { type: 'job.completed', atMs: T0 + 5_000 }, 'completed'),
    record('hpc-job/job-2', 'hpc-job', T0, { type: '@spawn', input: { ...input, jobId: 'job-2' } }, 'pending'),
    record('hpc-job/job-2', 'hpc-job', T0 + 1_000, { type: 'transfer.failed', atMs: T0 + 1_000, reason: 'endpoint unreachable' }, 'failed'),
  ]);
  valid(t, messages);
  const hpc = messages.filter((m) => m.type === 'hpc');
  t.deepEqual(
    hpc.map((m) => [m.jobId, m.status, m.progress, m.bytesTransferred, m.datasetSizeGb, m.sourceNodeId]),
    [
      ['job-1', 'pending', 0, 0, 250, ''],
      ['job-1', 'transferring', 0, 0, 250, ''],
      ['job-1', 'transferring', 0.5, 125_000_000_000, 250, ''],
      ['job-1', 'queued', 1, 125_000_000_000, 250, ''],
      ['job-1', 'running', 1, 125_000_000_000, 250, ''],
      ['job-1', 'completed', 1, 125_000_000_000, 250, ''],
      ['job-2', 'pending', 0, 0, 250, ''],
    ],
  );
  const failure = messages.at(-1);
  t.is(failure?.type, 'system');
  if (failure?.type === 'system') {
    t.is(failure.severity, 'error');
    t.regex(failure.message, /job-2 failed: endpoint unreachable/);
  }
  t.is(feed.stats().openHpcJobs, 0);
});

test('system effects become system messages of the shard\'s geozone; other effects are not console messages', (t) => {
  const feed = new ConsoleFeed();
  const effects: RegionEffect[] = [
    { type: 'system', atMs: T0, severity: 'warn', message: 'node CAISO-00004 went offline', details: { nodeId: 'CAISO-00004' } },
    { type: 'ended', atMs: T0, requestId: 'r1', geozone: 'CAISO', outcome: 'completed', nodeId: 'n1', reason: null },
    { type: 'system', atMs: T0 + 1, severity: 'success', message: 'node CAISO-00004 is back', details: {} },
  ];
  const messages = feed.fromEffects('CAISO', effects);
  valid(t, messages);
  t.deepEqual(messages, [
    { type: 'system', geozone: 'CAISO', severity: 'warn', message: 'node CAISO-00004 went offline', details: { nodeId: 'CAISO-00004' }, timestamp: new Date(T0).toISOString() },
    { type: 'system', geozone: 'CAISO', severity: 'success', message: 'node CAISO-00004 is back', details: {}, timestamp: new Date(T0 + 1).toISOString() },
  ]);
});
