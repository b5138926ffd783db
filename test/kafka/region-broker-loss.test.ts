import { setTimeout as sleep } from 'node:timers/promises';
import { KafkaJournalReader } from '../../adapters/kafka/kafka-journal-reader.js';
import { startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { ownBroker, ownBrokerTest } from './own-broker.js';

/**
 * A Kafka region never dies of its broker: started before the broker exists it
 * waits (not ready, and says why) and comes up when the broker does; with the
 * broker stopped and restarted under traffic, every request it acknowledged
 * (202) is in the journal afterwards, and the process is still serving.
 */
const ZONE = 'BLOSS';

async function readyz(region: LiveRegion): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${region.origin}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail().slice(-4_000)}`);
}

const telemetry = (nodeId: string): string =>
  JSON.stringify({
    'node-id': nodeId,
    geozone: ZONE,
    geohash: '9q9hvu',
    'energy-source': 'grid',
    'battery-level': 1,
    'gpu-utilization': 0.1,
    'gpu-count': 64,
    'models-loaded': ['llama-3-70b'],
    timestamp: new Date().toISOString(),
  });

ownBrokerTest('kafka region: started 20 s before its broker it waits, not ready, and comes up; a broker restart under traffic loses nothing acknowledged', async (t) => {
  t.timeout(600_000, 'broker late and restarted');
  const broker = await ownBroker();
  let region: LiveRegion | undefined;
  // Set in finally too: a failed wait must not leave the traffic loop keeping the test file alive.
  let stopTraffic = false;
  try {
    region = await startLiveRegion(['--kafka', broker.address, '--geozones', ZONE, '--group', 'broker-loss', '--sim-nodes', '0']);
    const live = region;
    await sleep(20_000);
    const waiting = await readyz(live);
    t.is(waiting.status, 503, 'not ready without a broker');
    t.regex(String(waiting.body['reason']), /Kafka|starting/, 'and it says why');
    t.is(live.child.exitCode, null, 'still running');

    await broker.start();
    await until('ready once the broker is up', 180_000, async () => (await readyz(live)).status === 200, () => live.stderr());

    const post = (path: string, body: string): Promise<Response> =>
      fetch(`${live.origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(15_000) });
    for (let n = 0; n < 4; n++) t.is((await post('/v1/telemetry', telemetry(`bl-node-${n}`))).status, 202);

    const acknowledged: string[] = [];
    /** The last answers that were not 202 (status and code), for the failure message. */
    const refusals: string[] = [];
    let sent = 0;
    let telemetryAtMs = Date.now();
    // Requests go on, one at a time, all through the outage: some are refused or time out (never acknowledged).
    const traffic = (async () => {
      while (!stopTraffic) {
        // The nodes keep reporting, as real ones do: a node silent for 30 s is offline, and an
        // outage plus a slow broker restart can last longer than that.
        if (Date.now() - telemetryAtMs >= 5_000) {
          telemetryAtMs = Date.now();
          await Promise.all([0, 1, 2, 3].map((n) => post('/v1/telemetry', telemetry(`bl-node-${n}`)).catch(() => undefined)));
        }
        const requestId = `bl-req-${sent++}`;
        const body = JSON.stringify({ 'request-id': requestId, 'model-id': 'llama-3-70b', 'context-window': 1024, priority: 'normal', 'requester-geozone': ZONE });
        try {
          const response = await post('/v1/inference', body);
          if (response.status === 202) acknowledged.push(requestId);
          else {
            refusals.push(`${response.status} ${((await response.json().catch(() => ({}))) as { code?: string }).code ?? ''}`);
            await sleep(100);
          }
        } catch (error) {
          refusals.push(String(error));
          await sleep(100);
        }
        refusals.splice(0, refusals.length - 5);
        // A node's reservations end on expiry; keep well under its capacity (64 GPUs x 2 per node, 4 nodes).
        await sleep(20);
      }
    })();
    await until('some acknowledged traffic', 60_000, () => Promise.resolve(acknowledged.length >= 20));
    const beforeOutage = acknowledged.length;
    await broker.stop();
    await sleep(10_000);
    const during = await readyz(live);
    await broker.start();
    await until('ready again after the broker restart', 240_000, async () => (await readyz(live)).status === 200, () => live.stderr());
    const afterRestart = acknowledged.length;
    await until(
      'acknowledged traffic after the restart',
      120_000,
      () => Promise.resolve(acknowledged.length >= afterRestart + 20),
      () => `last refusals: ${refusals.join('; ')}\n${live.stderr()}`,
    );
    stopTraffic = true;
    await traffic;
    t.is(during.status, 503, 'not ready while journal writes cannot go through');
    t.true(acknowledged.length > beforeOutage + 20, `acknowledged ${acknowledged.length} of ${sent}`);

    const line = await live.stop();
    region = undefined;
    t.deepEqual(line['geozones'], [ZONE]);
    t.is(line['error'], undefined);

    const journal = await KafkaJournalReader.open({ brokers: [broker.address], shardIds: [ZONE], clientId: 'broker-loss-check' });
    const reserved = new Set<string>();
    for (const record of journal.journal(ZONE).read(0)) {
      if (record.event.type === 'route.reserved') reserved.add(record.actorId.replace(/^reservation\//, ''));
    }
    const lost = acknowledged.filter((id) => !reserved.has(id));
    t.deepEqual(lost, [], 'every acknowledged request is in the journal');
  } finally {
    stopTraffic = true;
    region?.child.kill('SIGKILL');
    await broker.destroy();
  }
});
