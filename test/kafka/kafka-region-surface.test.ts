import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import WebSocket from 'ws';
import { topicNames } from '../../adapters/kafka/topics.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import { createKeyWithCli, startLiveRegion } from '../helpers/live-region.js';

/**
 * `arcnet region --kafka` serves what the embedded region serves: the HTTP API
 * under the same keys and scopes, the console, metrics with ownership, and the
 * inspector over the geozones it owns.
 */
async function until(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

kafkaTest('kafka region: the HTTP API, console, metrics and inspector under the same keys and scopes as the embedded region', async (t) => {
  t.timeout(240_000, 'kafka region surface');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const [zoneA, zoneB] = [`SA${run}`, `SB${run}`];
  const { dir, cleanup } = tempDir();
  const keysFile = join(dir, 'keys.json');
  const operator = createKeyWithCli(keysFile, 'operator', '*');
  const agentA = createKeyWithCli(keysFile, 'agent', zoneA);
  const developerB = createKeyWithCli(keysFile, 'developer', zoneB);
  const developerA = createKeyWithCli(keysFile, 'developer', zoneA);
  const viewerA = createKeyWithCli(keysFile, 'viewer', zoneA);
  const region = await startLiveRegion(['--kafka', brokers.join(','), '--geozones', `${zoneA},${zoneB}`, '--group', `surface-${run}`, '--api-keys', keysFile]);
  const kafka = testKafka(`surface-${run}`);
  const observer = kafka.consumer({ groupId: `surface-observer-${run}` });
  const socket = new WebSocket(`${region.origin.replace(/^http/, 'ws')}/telemetry?geozones=${zoneA}&types=telemetry,inference`, { headers: { authorization: `Bearer ${viewerA}` } });
  const consoleMessages: Record<string, unknown>[] = [];
  socket.on('message', (data: Buffer) => consoleMessages.push(JSON.parse(data.toString()) as Record<string, unknown>));
  const call = (path: string, key: string | undefined, init: RequestInit = {}): Promise<Response> =>
    fetch(`${region.origin}${path}`, { ...init, headers: { ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  try {
    await until('the region to be ready', 120_000, async () => (await call('/readyz', undefined)).status === 200);
    const dispatched: string[] = [];
    await observer.connect();
    await observer.subscribe({ topics: [topicNames().dispatch(zoneA)], fromBeginning: true });
    await observer.run({
      eachMessage: ({ message }) => {
        dispatched.push(String((JSON.parse(message.value?.toString() ?? '{}') as Record<string, unknown>)['request-id']));
        return Promise.resolve();
      },
    });

    const telemetry = {
      'node-id': `n-${run}`,
      geozone: zoneA,
      geohash: '9q9hvu',
      'energy-source': 'cogen',
      'battery-level': 0.9,
      'gpu-utilization': 0.2,
      'models-loaded': ['llama-3-70b'],
      timestamp: new Date().toISOString(),
    };
    t.is((await call('/v1/telemetry', agentA, { method: 'POST', body: JSON.stringify(telemetry) })).status, 202, 'an agent key posts telemetry for its geozone');
    t.is((await call('/v1/telemetry', agentA, { method: 'POST', body: JSON.stringify({ ...telemetry, 'node-id': `m-${run}`, geozone: zoneB }) })).status, 403, 'not for another geozone');

    const request = { 'request-id': `r-${run}`, 'model-id': 'llama-3-70b', 'context-window': 4096, priority: 'normal', 'requester-geozone': zoneA };
    t.is((await call('/v1/inference', developerB, { method: 'POST', body: JSON.stringify(request) })).status, 403, 'a developer of another geozone may not submit for this one');
    t.is((await call('/v1/inference', viewerA, { method: 'POST', body: JSON.stringify(request) })).status, 403, 'a viewer may not submit');
    const accepted = await call('/v1/inference', developerA, { method: 'POST', body: JSON.stringify(request) });
    t.is(accepted.status, 202);
    const decision = (await accepted.json()) as Record<string, unknown>;
    t.is(decision['node-id'], `n-${run}`);
    await until('the dispatch on its Kafka topic', 60_000, () => dispatched.includes(`r-${run}`));

    t.is((await call(`/v1/nodes/n-${run}`, viewerA)).status, 200);
    t.is((await call(`/v1/nodes/n-${run}`, developerB)).status, 404, 'another geozone answers like a missing node');
    const metrics = await call('/metrics', operator);
    t.is(metrics.status, 200);
    const text = await metrics.text();
    t.regex(text, new RegExp(`arcnet_geozone_owned\\{geozone="${zoneA}"\\} 1`));
    t.regex(text, /arcnet_ownership_rebalances_total [1-9]/);
    t.is((await call('/metrics', viewerA)).status, 403, 'metrics need a key that sees every geozone');

    const info = (await (await call('/inspector/api/info', viewerA)).json()) as { mode: string; geozones: string[] };
    t.deepEqual(info.geozones, [zoneA], 'the inspector lists the owned geozones in the key scope');
    t.is(info.mode, 'live');
    const history = await call(`/inspector/api/history?id=${encodeURIComponent(`node/n-${run}`)}&limit=50`, viewerA);
    t.is(history.status, 200, 'actor history reads the Kafka journal');
    const entries = ((await history.json()) as { entries: { event: string }[] }).entries;
    t.true(entries.length >= 2, `spawned and reserved at least: ${JSON.stringify(entries)}`);
    // Time travel replays the Kafka journal in a worker (read-only, beside this live owner).
    const firstOffset = ((await (await call(`/inspector/api/history?id=${encodeURIComponent(`node/n-${run}`)}&limit=50`, viewerA)).json()) as { entries: { offset: number }[] }).entries[0]?.offset ?? -1;
    const travelled = await call(`/inspector/api/at?geozone=${zoneA}&offset=${firstOffset}`, viewerA);
    t.is(travelled.status, 200, await travelled.clone().text());
    const point = (await travelled.json()) as { shards: { geozone: string; offset: number; stateHash: string; record?: { actorId: string } }[] };
    t.is(point.shards.length, 1, 'only the geozone in the key scope');
    t.is(point.shards[0]?.geozone, zoneA);
    t.is(point.shards[0]?.record?.actorId, `node/n-${run}`, 'the record at the point is the node joining');
    const nodeHistory = await call(`/v1/nodes/n-${run}/history?from-offset=0&to-offset=1000`, viewerA);
    t.is(nodeHistory.status, 200, 'node history reads the Kafka journal');
    await until('the console to carry the telemetry and the inference', 30_000, () => consoleMessages.some((m) => m['type'] === 'inference') && consoleMessages.some((m) => m['type'] === 'telemetry'));
    const events = consoleMessages.filter((m) => m['type'] === 'telemetry' || m['type'] === 'inference');
    t.true(
      events.every((m) => m['geozone'] === zoneA),
      `the console filter and the key scope hold: ${JSON.stringify(events.map((m) => [m['type'], m['geozone']]))}`,
    );

    const line = await region.stop();
    t.is(line['mode'], 'kafka');
    t.deepEqual(line['geozones'], [zoneA, zoneB]);
    t.is(line['routed'], 1);
  } finally {
    socket.close();
    await observer.disconnect().catch(() => undefined);
    region.child.kill('SIGKILL');
    cleanup();
  }
});
