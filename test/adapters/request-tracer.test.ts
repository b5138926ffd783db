import test from 'ava';
import { createRegion, type Region } from '../../actors/region.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { limits } from '../../actors/wire.js';
import { buildHttpApi } from '../../adapters/http/http-api.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { RegionMetrics } from '../../adapters/metrics/prometheus.js';
import { createRequestTracer, tracesEndpoint, type RequestTracer, type RequestTracerOptions } from '../../adapters/otel/request-tracer.js';
import { traceRegionApi } from '../../adapters/otel/traced-region-api.js';
import { createRegionApi, regionMetricsSource } from '../../app/region-api.js';
import { realScheduler, WallClock } from '../../runtime/clock.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { tempDir } from '../helpers/fixtures.js';
import { jsonHeaders, telemetryBody } from '../helpers/http-region.js';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';

const json = jsonHeaders;
const telemetry = (nodeId: string): string => telemetryBody(nodeId);
const inference = (requestId: string, modelId = 'llama-3-70b', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ 'request-id': requestId, 'model-id': modelId, 'context-window': 4096, priority: 'normal', 'requester-geozone': 'CAISO', ...extra });
const result = (requestId: string, nodeId: string) => JSON.stringify({ 'request-id': requestId, 'node-id': nodeId, 'latency-ms': 12, status: 'completed' });

type App = ReturnType<typeof buildHttpApi>;

/**
 * A region behind the HTTP API, assembled as http-api.test.ts does, with the
 * tracer wired in as the region command wires it: journal store wrapped,
 * released effects passed on, the API the routes call wrapped. Resolves with
 * the spans the receiver got once the tracer has shut down (flushed).
 */
async function traced(options: Omit<RequestTracerOptions, 'endpoint'>, run: (app: App, tracer: RequestTracer, region: Region) => Promise<void>): Promise<ReceivedSpan[]> {
  const receiver = await startOtlpReceiver();
  const { dir, cleanup } = tempDir();
  const tracer = await createRequestTracer({ ...options, endpoint: receiver.url });
  if (tracer === undefined) throw new Error('an endpoint was given: the tracer must be on');
  const metrics = new RegionMetrics();
  const store = tracer.wrapJournalStore(metrics.timeAppends(new LmdbStore(dir)));
  let apiEffects: (effects: readonly RegionEffect[]) => void = () => undefined;
  const region = createRegion({
    geozones: ['CAISO'],
    store,
    clock: new WallClock(),
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects) => {
      apiEffects(effects);
      tracer.onEffects(effects);
    },
  });
  region.supervisor.recover();
  const wiring = createRegionApi(region, { decisionTimeoutMs: 5_000, ready: () => true, metrics, store });
  metrics.readFrom(regionMetricsSource(region, () => 0));
  apiEffects = wiring.onEffects;
  const app = buildHttpApi(traceRegionApi(wiring.api, tracer), { bodyLimitBytes: limits.maxMessageBytes });
  try {
    await run(app, tracer, region);
    await tracer.shutdown();
    return receiver.spans;
  } finally {
    await app.close();
    await store.close();
    await receiver.close();
    cleanup();
  }
}

const rootOf = (spans: readonly ReceivedSpan[], requestId: string): ReceivedSpan | undefined =>
  spans.find((s) => s.name === 'arcnet.request' && s.attributes['arcnet.request_id'] === requestId);
const childrenOf = (spans: readonly ReceivedSpan[], root: ReceivedSpan): ReceivedSpan[] =>
  spans.filter((s) => s.traceId === root.traceId && s !== root).sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));

test('with no endpoint there is no tracer; the OTLP environment variables give one when the caller passes the environment', async (t) => {
  t.is(await createRequestTracer({ serviceName: 'arcnet' }), undefined);
  t.is(await createRequestTracer({ env: {} }), undefined);
  t.is(tracesEndpoint({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' } }), 'http://collector:4318/v1/traces');
  t.is(tracesEndpoint({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9000/in' } }), 'http://traces:9000/in');
  t.is(tracesEndpoint({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' } }), undefined);
  t.is(tracesEndpoint({ endpoint: 'http://127.0.0.1:4318/v1/traces', env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://elsewhere/v1/traces' } }), 'http://127.0.0.1:4318/v1/traces');
  const notUrl = t.throws(() => tracesEndpoint({ endpoint: 'collector:4318' }));
  t.true(notUrl instanceof ArcError && notUrl.code === ErrorCodes.USAGE);
  await t.throwsAsync(createRequestTracer({ endpoint: 'http://127.0.0.1:1/v1/traces', maxOpenTraces: 0 }), { message: /maxOpenTraces/ });
});

test('one trace follows a request over HTTP: ingress, journal append, route, dispatch and result, all under arcnet.request', async (t) => {
  const spans = await traced({ serviceName: 'arcnet-test', geozones: ['CAISO'] }, async (app, tracer, region) => {
    t.is((await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') })).statusCode, 202);
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('r1') })).statusCode, 202);
    t.is(tracer.openTraces, 1);
    t.is((await app.inject({ method: 'POST', url: '/v1/results', headers: json, payload: result('r1', 'n1') })).statusCode, 202);
    t.is(tracer.openTraces, 0, 'the trace ended with the request');
    // A request that never came through ingress (here: straight into the region) is not traced.
    region.supervisor.submit({ type: 'inference', request: { requestId: 'untraced', modelId: 'llama-3-70b', contextWindow: 1, priority: 'normal', requesterGeozone: 'CAISO' }, triedGeozones: [] });
    await region.supervisor.whenIdle();
    await region.supervisor.shard('CAISO').whenDurable(region.supervisor.shard('CAISO').lastOffset);
  });

  t.is(new Set(spans.map((s) => s.traceId)).size, 1, 'telemetry and the untraced request made no trace');
  const root = rootOf(spans, 'r1');
  if (root === undefined) return t.fail('no arcnet.request span for r1');
  t.is(root.parentSpanId, undefined);
  t.is(root.kind, 2, 'server span');
  t.is(root.resource['service.name'], 'arcnet-test');
  t.deepEqual(root.resource['arcnet.geozones'], ['CAISO']);
  t.like(root.attributes, {
    'arcnet.request_id': 'r1',
    'arcnet.transport': 'http',
    'http.request.method': 'POST',
    'http.route': '/v1/inference',
    'arcnet.model_id': 'llama-3-70b',
    'arcnet.priority': 'normal',
    'arcnet.geozone': 'CAISO',
    'arcnet.node_id': 'n1',
    'arcnet.outcome': 'completed',
  });
  t.true(typeof root.attributes['arcnet.latency_ms'] === 'number' && root.attributes['arcnet.latency_ms'] >= 0);
  t.not(root.status.code, 2);

  const children = childrenOf(spans, root);
  t.true(children.every((s) => s.parentSpanId === root.spanId), 'every span is a child of arcnet.request');
  t.true(children.every((s) => s.startNs >= root.startNs && s.endNs <= root.endNs), 'inside the root span');
  t.deepEqual(
    children.map((s) => s.name),
    ['ingress', 'journal.append', 'route', 'dispatch', 'result', 'journal.append'],
    'in the order they happened: the result is journaled too',
  );
  const [ingress, append, route, dispatch, resultSpan, resultAppend] = children as [ReceivedSpan, ReceivedSpan, ReceivedSpan, ReceivedSpan, ReceivedSpan, ReceivedSpan];
  t.is(ingress.attributes['arcnet.transport'], 'http');
  t.like(append.attributes, { 'arcnet.geozone': 'CAISO' });
  t.true((append.attributes['arcnet.journal.records'] as number) >= 1);
  t.true(append.endNs <= route.startNs, 'the decision is released once its append is durable');
  t.like(route.attributes, { 'arcnet.outcome': 'reserved', 'arcnet.node_id': 'n1', 'arcnet.candidates': 1, 'arcnet.geozone': 'CAISO' });
  t.regex(String(route.attributes['arcnet.reason']), /best of 1 eligible/);
  t.like(dispatch.attributes, { 'arcnet.node_id': 'n1', 'arcnet.model_id': 'llama-3-70b', 'arcnet.geozone': 'CAISO' });
  t.true(typeof dispatch.attributes['arcnet.expires_at_ms'] === 'number');
  t.true(dispatch.endNs <= resultSpan.startNs, 'the dispatch is open until the node answers');
  t.is(resultSpan.attributes['arcnet.transport'], 'http');
  t.true(resultAppend.startNs >= resultSpan.startNs);
});

test('a request no node can take ends its trace as rejected', async (t) => {
  const spans = await traced({}, async (app) => {
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('x1', 'mixtral-8x22b') })).statusCode, 503);
  });
  const root = rootOf(spans, 'x1');
  if (root === undefined) return t.fail('no arcnet.request span for x1');
  t.like(root.attributes, { 'arcnet.outcome': 'rejected', 'arcnet.model_id': 'mixtral-8x22b', 'error.type': 'rejected' });
  t.is(root.status.code, 2, 'error status');
  const children = childrenOf(spans, root);
  t.deepEqual(children.map((s) => s.name), ['ingress', 'journal.append', 'route']);
  t.like(children[2]?.attributes, { 'arcnet.outcome': 'rejected', 'arcnet.candidates': 0 });
});

test('a request the edge refuses ends its trace with the error code', async (t) => {
  const spans = await traced({}, async (app) => {
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('bad1', 'llama-3-70b', { 'context-window': -1 }) })).statusCode, 400);
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: '{nope' })).statusCode, 400);
  });
  const root = rootOf(spans, 'bad1');
  if (root === undefined) return t.fail('no arcnet.request span for bad1');
  t.like(root.attributes, { 'arcnet.outcome': 'refused', 'error.type': ErrorCodes.VALIDATION });
  t.is(root.status.code, 2);
  t.is(spans.filter((s) => s.name === 'arcnet.request').length, 1, 'a body that is not JSON opens no trace');
});

test("a caller's W3C traceparent is continued; a malformed one starts a new trace", async (t) => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const callerSpanId = '00f067aa0ba902b7';
  const spans = await traced({}, async (app) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') });
    const continued = await app.inject({ method: 'POST', url: '/v1/inference', headers: { ...json, traceparent: `00-${traceId}-${callerSpanId}-01` }, payload: inference('c1') });
    t.is(continued.statusCode, 202);
    const fresh = await app.inject({ method: 'POST', url: '/v1/inference', headers: { ...json, traceparent: `00-${'0'.repeat(32)}-${callerSpanId}-01` }, payload: inference('c2') });
    t.is(fresh.statusCode, 202);
  });
  const root = rootOf(spans, 'c1');
  if (root === undefined) return t.fail('no arcnet.request span for c1');
  t.is(root.traceId, traceId);
  t.is(root.parentSpanId, callerSpanId);
  t.true(childrenOf(spans, root).some((s) => s.name === 'route'), "the region's spans are in the caller's trace");
  const other = rootOf(spans, 'c2');
  t.not(other?.traceId, '0'.repeat(32));
  t.is(other?.parentSpanId, undefined);
});

test('open traces are bounded: beyond maxOpenTraces the oldest ends as abandoned', async (t) => {
  const spans = await traced({ maxOpenTraces: 2 }, async (app, tracer) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') });
    for (const id of ['b1', 'b2', 'b3']) t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference(id) })).statusCode, 202);
    t.is(tracer.openTraces, 2);
    // b1's result joins nothing: its trace is gone.
    t.is((await app.inject({ method: 'POST', url: '/v1/results', headers: json, payload: result('b1', 'n1') })).statusCode, 202);
  });
  const b1 = rootOf(spans, 'b1');
  t.like(b1?.attributes, { 'arcnet.outcome': 'abandoned' });
  t.regex(String(b1?.attributes['arcnet.reason']), /maxOpenTraces/);
  t.false(spans.some((s) => s.traceId === b1?.traceId && s.name === 'result'));
  for (const id of ['b2', 'b3']) {
    const root = rootOf(spans, id);
    t.like(root?.attributes, { 'arcnet.outcome': 'abandoned' }, id);
    t.regex(String(root?.attributes['arcnet.reason']), /shut down/, id);
  }
});
