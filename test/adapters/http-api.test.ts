import test from 'ava';
import type { Region } from '../../actors/region.js';
import { limits } from '../../actors/wire.js';
import { inferenceBody, telemetryBody, withHttpRegion, type HttpRegion } from '../helpers/http-region.js';

const telemetry = telemetryBody;
const inference = (requestId: string, modelId?: string): string => inferenceBody(requestId, modelId);

async function withApi(run: (app: HttpRegion['app'], region: Region) => Promise<void>): Promise<void> {
  await withHttpRegion(({ app, region }) => run(app, region));
}

const json = { 'content-type': 'application/json' };

test('health and readiness answer', async (t) => {
  await withApi(async (app) => {
    t.is((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    t.is((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });
});

test('telemetry is accepted once durable and shows in the node views; inference gets 202 with the node and the expiry', async (t) => {
  await withApi(async (app, region) => {
    const accepted = await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') });
    t.is(accepted.statusCode, 202);
    const shard = region.supervisor.shard('CAISO');
    t.is(shard.lastDurableOffset, shard.lastOffset, 'answered only after the journal is durable');
    const node = (await app.inject({ method: 'GET', url: '/v1/nodes/n1' })).json<{ status: string; energySource: string }>();
    t.is(node.status, 'online');
    t.is(node.energySource, 'cogen');
    t.is((await app.inject({ method: 'GET', url: '/v1/nodes?model=llama-3-70b&status=online' })).json<{ nodes: unknown[] }>().nodes.length, 1);
    t.is((await app.inject({ method: 'GET', url: '/v1/nodes?model=whisper' })).json<{ nodes: unknown[] }>().nodes.length, 0);

    const reply = await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('r1') });
    t.is(reply.statusCode, 202);
    const body = reply.json<Record<string, unknown>>();
    t.is(body['node-id'], 'n1');
    t.is(body['outcome'], 'reserved');
    t.true(typeof body['expires-at'] === 'string');
    t.is((await app.inject({ method: 'GET', url: '/v1/reservations/r1' })).json<{ state: string }>().state, 'dispatched');
    const duplicate = await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('r1') });
    t.is(duplicate.statusCode, 409);
    const summary = (await app.inject({ method: 'GET', url: '/v1/summary' })).json<{ summaries: { totalNodes: number; openReservations: number }[] }>();
    t.is(summary.summaries[0]?.totalNodes, 1);
    t.is(summary.summaries[0]?.openReservations, 1);
  });
});

test('no node fits: 503 with a coded reason', async (t) => {
  await withApi(async (app) => {
    const reply = await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('r9', 'mixtral-8x22b') });
    t.is(reply.statusCode, 503);
    t.is(reply.json<{ code: string }>().code, 'ARC_ERR_NO_CAPACITY');
  });
});

test('bad bodies get 4xx with a stable code and never reach an actor', async (t) => {
  await withApi(async (app, region) => {
    const cases: [string, string, number, string][] = [
      ['wrong type', telemetry('n1', { 'battery-level': 'high' }), 400, 'ARC_ERR_VALIDATION'],
      ['unknown enum', telemetry('n1', { 'energy-source': 'fusion' }), 400, 'ARC_ERR_VALIDATION'],
      ['extra key', telemetry('n1', { admin: true }), 400, 'ARC_ERR_VALIDATION'],
      ['not JSON', '{nope', 400, 'ARC_ERR_MALFORMED_JSON'],
      ['oversized', 'x'.repeat(limits.maxMessageBytes + 10), 413, 'ARC_ERR_PAYLOAD_TOO_LARGE'],
    ];
    for (const [what, payload, status, code] of cases) {
      const reply = await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload });
      t.is(reply.statusCode, status, what);
      t.is(reply.json<{ code: string }>().code, code, what);
    }
    const wrongType = await app.inject({ method: 'POST', url: '/v1/telemetry', headers: { 'content-type': 'text/plain' }, payload: telemetry('n1') });
    t.is(wrongType.statusCode, 415);
    t.is(region.supervisor.shard('CAISO').actorCount, 0);
    t.is((await app.inject({ method: 'GET', url: '/v1/nodes/n1' })).statusCode, 404);
    t.is((await app.inject({ method: 'GET', url: '/v1/reservations/none' })).statusCode, 404);
  });
});

test('the API answers over a real socket', async (t) => {
  await withApi(async (app) => {
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const response = await fetch(`${address}/v1/telemetry`, { method: 'POST', headers: json, body: telemetry('s1') });
    t.is(response.status, 202);
    const node = (await (await fetch(`${address}/v1/nodes/s1`)).json()) as { id: string };
    t.is(node.id, 's1');
  });
});

test('operators drain and resume a node: a draining node takes no new reservation', async (t) => {
  await withApi(async (app) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') });
    t.is((await app.inject({ method: 'POST', url: '/v1/nodes/n1/drain' })).statusCode, 202);
    t.is((await app.inject({ method: 'GET', url: '/v1/nodes/n1' })).json<{ status: string }>().status, 'draining');
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('d1') })).statusCode, 503);
    t.is((await app.inject({ method: 'POST', url: '/v1/nodes/n1/resume' })).statusCode, 202);
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('d2') })).statusCode, 202);
    t.is((await app.inject({ method: 'POST', url: '/v1/nodes/ghost/drain' })).statusCode, 404);
  });
});

test('GET /metrics exposes the region counters, nodes by status and the journal append histogram', async (t) => {
  await withApi(async (app) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: json, payload: telemetry('n1') });
    await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('m1') });
    await app.inject({ method: 'POST', url: '/v1/inference', headers: json, payload: inference('m2', 'mixtral-8x22b') });
    const reply = await app.inject({ method: 'GET', url: '/metrics' });
    t.is(reply.statusCode, 200);
    t.regex(String(reply.headers['content-type'] ?? ''), /text\/plain/);
    const text = reply.body;
    t.regex(text, /^arcnet_requests_total 2$/m);
    t.regex(text, /^arcnet_routed_total 1$/m);
    t.regex(text, /^arcnet_rejected_total 1$/m);
    t.regex(text, /^arcnet_nodes\{geozone="CAISO",status="online"\} 1$/m);
    t.regex(text, /^arcnet_journal_append_seconds_count\{geozone="CAISO"\} [1-9]\d*$/m);
    t.regex(text, /^arcnet_routing_seconds_count [1-9]\d*$/m);
    // Every sample line is "name{labels} value" with a HELP and TYPE for its family.
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) t.regex(line, /^[a-z_:][a-z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|NaN|\+Inf$/);
  });
});
