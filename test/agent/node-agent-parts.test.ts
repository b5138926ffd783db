import test from 'ava';
import { pino } from 'pino';
import type { InferenceResultV1 } from '../../actors/wire.js';
import { parseNvidiaSmiCsv } from '../../adapters/gpu/nvidia-smi.js';
import { OpenAiModelServer } from '../../adapters/model-server/openai-model-server.js';
import { Backoff } from '../../agent/backoff.js';
import { DispatchRunner } from '../../agent/dispatch-runner.js';
import { ResultOutbox } from '../../agent/result-outbox.js';
import { parseBatteryFile } from '../../agent/telemetry-report.js';
import { agentChannelUrl } from '../../cli/agent-command.js';
import { Prng } from '../../runtime/random.js';
import { startCompletionsServer } from '../helpers/completions-server.js';
import { arcnetSync } from '../helpers/live-region.js';

const logger = pino({ level: 'silent' });

test('nvidia-smi CSV: one line per GPU, mean utilisation as a fraction; anything else is no reading', (t) => {
  t.deepEqual(parseNvidiaSmiCsv('35\n45\n 0\n100\n'), { gpuCount: 4, utilization: 0.45 });
  t.deepEqual(parseNvidiaSmiCsv('12 %\n'), { gpuCount: 1, utilization: 0.12 });
  t.is(parseNvidiaSmiCsv(''), undefined);
  t.is(parseNvidiaSmiCsv('[N/A]\n'), undefined);
  t.is(parseNvidiaSmiCsv('140\n'), undefined);
});

test('battery file: a bare level, or JSON with level and source; a half-written file throws (the last reading stays)', (t) => {
  const before = { energySource: 'battery' as const, batteryLevel: 0.9 };
  t.deepEqual(parseBatteryFile('0.42', before), { energySource: 'battery', batteryLevel: 0.42 });
  t.deepEqual(parseBatteryFile('{"energy-source":"cogen"}', before), { energySource: 'cogen', batteryLevel: 0.9 });
  t.deepEqual(parseBatteryFile('{"battery-level":0.1,"energy-source":"grid"}', before), { energySource: 'grid', batteryLevel: 0.1 });
  t.throws(() => parseBatteryFile('{"battery-le', before));
  t.throws(() => parseBatteryFile('1.5', before));
  t.throws(() => parseBatteryFile('{"energy-source":"wind"}', before));
});

test('backoff: grows to its bound with jitter, never above it, and starts over after a reset', (t) => {
  const prng = new Prng(7);
  const backoff = new Backoff(100, 2_000, (bound) => Math.floor(prng.next() * bound));
  const waits = Array.from({ length: 40 }, () => backoff.next());
  t.true(waits.every((w) => w >= 50 && w <= 2_000), JSON.stringify(waits));
  t.true(waits.slice(10).some((w) => w > 1_000), 'late waits reach towards the bound');
  t.true(new Set(waits).size > 20, 'jittered');
  backoff.reset();
  t.true(backoff.next() <= 100);
});

test('--region: an http(s) address becomes the ws(s) agent channel', (t) => {
  t.is(agentChannelUrl('http://127.0.0.1:8080'), 'ws://127.0.0.1:8080/v1/agent');
  t.is(agentChannelUrl('https://region.example:443/'), 'wss://region.example/v1/agent');
  t.is(agentChannelUrl('wss://region.example/custom/agent'), 'wss://region.example/custom/agent');
  t.throws(() => agentChannelUrl('ftp://x'), { message: /http\(s\):\/\/ or ws\(s\):\/\// });
});

test('arcnet agent refuses bad flags with a usage error (exit 2)', (t) => {
  const neither = arcnetSync('agent', '--node-id', 'n1', '--geozone', 'CAISO');
  t.is(neither.status, 2);
  t.regex(neither.stderr, /ARC_ERR_USAGE: give --region URL or --kafka BROKERS/);
  const mixed = arcnetSync('agent', '--region', 'http://127.0.0.1:1', '--node-id', 'n1', '--geozone', 'CAISO', '--node-cert', 'x');
  t.is(mixed.status, 2);
  t.regex(mixed.stderr, /--node-cert applies to --kafka only/);
  const battery = arcnetSync('agent', '--region', 'http://127.0.0.1:1', '--node-id', 'n1', '--geozone', 'CAISO', '--battery-level', '2');
  t.regex(battery.stderr, /--battery-level must be a number from 0 to 1/);
});

const dispatch = (requestId: string, expiresInMs = 30_000) => ({
  'request-id': requestId,
  'node-id': 'n1',
  'model-id': 'm1',
  'context-window': 4096,
  priority: 'normal' as const,
  'expires-at': new Date(Date.now() + expiresInMs).toISOString(),
});

test('dispatch runner: bounded concurrency, duplicates not run twice, expired and overflow answered, model-server failure and timeout are failed results', async (t) => {
  const server = await startCompletionsServer(['m1'], { delayMs: 300 });
  let open = 0;
  let mostOpen = 0;
  const results: InferenceResultV1[] = [];
  try {
    const outbox = new ResultOutbox(100);
    const modelServer = new OpenAiModelServer({ baseUrl: `${server.url}/v1`, timeoutMs: 5_000, maxResponseBytes: 64 * 1024 });
    const complete = modelServer.complete.bind(modelServer);
    // Count calls in flight around the real client.
    modelServer.complete = async (request, signal) => {
      mostOpen = Math.max(mostOpen, ++open);
      try {
        return await complete(request, signal);
      } finally {
        open--;
      }
    };
    const runner = new DispatchRunner({
      nodeId: 'n1',
      modelServer,
      maxTokens: 8,
      maxConcurrentRuns: 2,
      maxDispatchesInHand: 5,
      maxRememberedRequests: 100,
      outbox,
      onResult: (result) => results.push(result),
      wallNowMs: () => Date.now(),
      logger,
    });
    const offers = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].map((id) => runner.offer(dispatch(id)));
    t.deepEqual(offers, ['taken', 'taken', 'taken', 'taken', 'taken', 'refused-full']);
    t.is(runner.offer(dispatch('r1')), 'duplicate');
    t.is(runner.offer(dispatch('old', -1_000)), 'expired');
    t.deepEqual(results.map((r) => [r['request-id'], r.status]), [['r6', 'failed']], 'the overflow is answered at once');
    await runner.stop(30_000);
    t.is(mostOpen, 2, 'never more model calls than maxConcurrentRuns');
    const completed = results.filter((r) => r.status === 'completed').map((r) => r['request-id']);
    t.deepEqual(completed.sort(), ['r1', 'r2', 'r3', 'r4', 'r5']);
    t.true(results.every((r) => r['latency-ms'] >= (r.status === 'completed' ? 300 : 0)), 'latency includes the model call');
    t.is(outbox.size, 6, 'every result owed until accepted');
    t.is(runner.offer(dispatch('late')), 'stopping');

    // A failing server and one slower than the timeout: both are failed results.
    server.failing = true;
    const failingRunner = new DispatchRunner({ nodeId: 'n1', modelServer, maxTokens: 8, maxConcurrentRuns: 1, maxDispatchesInHand: 4, maxRememberedRequests: 10, outbox, onResult: (r) => results.push(r), wallNowMs: () => Date.now(), logger });
    failingRunner.offer(dispatch('f1'));
    await failingRunner.stop(30_000);
    t.is(results.at(-1)?.status, 'failed');
    server.failing = false;
    server.delayMs = 3_000;
    const slow = new OpenAiModelServer({ baseUrl: server.url, timeoutMs: 200, maxResponseBytes: 64 * 1024 });
    const slowRunner = new DispatchRunner({ nodeId: 'n1', modelServer: slow, maxTokens: 8, maxConcurrentRuns: 1, maxDispatchesInHand: 4, maxRememberedRequests: 10, outbox, onResult: (r) => results.push(r), wallNowMs: () => Date.now(), logger });
    slowRunner.offer(dispatch('s1'));
    slowRunner.offer(dispatch('s2'));
    // Drain time shorter than the work: what is still in hand is abandoned as failed.
    const { abandoned } = await slowRunner.stop(50);
    t.is(abandoned, 2);
    t.deepEqual(results.slice(-2).map((r) => [r['request-id'], r.status]).sort(), [['s1', 'failed'], ['s2', 'failed']]);
  } finally {
    await server.close();
  }
});

test('result outbox: kept until settled, bounded (oldest dropped), whenEmpty', async (t) => {
  const outbox = new ResultOutbox(2);
  const result = (id: string): InferenceResultV1 => ({ 'request-id': id, 'node-id': 'n1', 'latency-ms': 1, status: 'completed' });
  outbox.add(result('a'));
  outbox.add(result('b'));
  outbox.add(result('c'));
  t.deepEqual(outbox.all().map((r) => r['request-id']), ['b', 'c']);
  t.is(outbox.dropped, 1);
  t.false(await outbox.whenEmpty(20));
  const empty = outbox.whenEmpty(5_000);
  t.true(outbox.settle('b'));
  t.false(outbox.settle('b'), 'settled once');
  outbox.settle('c');
  t.true(await empty);
  t.is(outbox.accepted, 2);
});

test('dispatch runner: waiting dispatches start by priority (critical, normal, background), then arrival', async (t) => {
  const server = await startCompletionsServer(['m1'], { delayMs: 100 });
  try {
    const modelServer = new OpenAiModelServer({ baseUrl: server.url, timeoutMs: 5_000, maxResponseBytes: 64 * 1024 });
    const runner = new DispatchRunner({ nodeId: 'n1', modelServer, maxTokens: 8, maxConcurrentRuns: 1, maxDispatchesInHand: 10, maxRememberedRequests: 10, outbox: new ResultOutbox(10), onResult: () => undefined, wallNowMs: () => Date.now(), logger });
    const offer = (id: string, priority: 'critical' | 'normal' | 'background'): void => void runner.offer({ ...dispatch(id), priority });
    offer('b1', 'background');
    offer('b2', 'background');
    offer('n1', 'normal');
    offer('c1', 'critical');
    offer('n2', 'normal');
    await runner.stop(30_000);
    t.deepEqual(
      server.completions.map((c) => String(c['prompt']).split(' ').pop()),
      ['b1', 'c1', 'n1', 'n2', 'b2'],
      'b1 was already running; the rest by priority',
    );
  } finally {
    await server.close();
  }
});
