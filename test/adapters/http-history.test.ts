import test from 'ava';
import { inferenceBody, jsonHeaders, telemetryBody, withHttpRegion } from '../helpers/http-region.js';

interface Change {
  offset: number;
  time: string;
  event: string;
  status: string;
  details: Record<string, unknown>;
}
interface History {
  nodeId: string;
  geozone: string;
  asOf?: { offset: number; time: string | null; node: { gpuUtilization: number; status: string; reservations: string[] } | null };
  changes?: { items: Change[]; next: number | null };
}

const report = (gpu: number, i: number): string => telemetryBody('n1', { 'gpu-utilization': gpu, timestamp: new Date(Date.now() + i * 1_000).toISOString() });

test("a node's history: its document as of an offset or a time, and its changes over a range, from the journal", async (t) => {
  await withHttpRegion(async ({ app, region }) => {
    const post = async (url: string, payload?: string): Promise<void> => {
      const reply = await app.inject({ method: 'POST', url, headers: jsonHeaders, ...(payload === undefined ? {} : { payload }) });
      t.true(reply.statusCode < 300, `${url}: ${reply.body}`);
    };
    await post('/v1/telemetry', report(0.1, 0));
    await post('/v1/telemetry', report(0.2, 1));
    // A snapshot in the middle: later as-of answers start from it, earlier ones from the journal's start.
    await region.supervisor.snapshotAll();
    await post('/v1/inference', inferenceBody('h1'));
    await post('/v1/telemetry', report(0.3, 2));
    await post('/v1/nodes/n1/drain');
    await post('/v1/telemetry', telemetryBody('other'));

    const all = (await app.inject({ method: 'GET', url: '/v1/nodes/n1/history' })).json<History>();
    t.is(all.geozone, 'CAISO');
    t.deepEqual(
      all.changes?.items.map((c) => c.event),
      ['@spawn', 'telemetry', 'reserve', 'telemetry', 'drain'],
      "only the node's own events, in journal order",
    );
    t.is(all.changes?.next, null);
    const changes = all.changes?.items ?? [];
    const [spawned, second, reserved, third, drained] = changes;
    t.is(drained?.status, 'draining');
    t.deepEqual(reserved?.details['requestId'], 'h1');

    const at = async (query: string): Promise<History> => {
      const reply = await app.inject({ method: 'GET', url: `/v1/nodes/n1/history?${query}` });
      t.is(reply.statusCode, 200, reply.body);
      return reply.json<History>();
    };
    t.is((await at(`offset=${spawned?.offset}`)).asOf?.node?.gpuUtilization, 0.1);
    t.is((await at(`offset=${second?.offset}`)).asOf?.node?.gpuUtilization, 0.2);
    const afterReserve = (await at(`offset=${reserved?.offset}`)).asOf?.node;
    t.deepEqual(afterReserve?.reservations, ['h1']);
    t.is(afterReserve?.status, 'online');
    t.is((await at(`offset=${third?.offset}`)).asOf?.node?.gpuUtilization, 0.3);
    t.is((await at(`offset=${drained?.offset}`)).asOf?.node?.status, 'draining');
    t.is((await at(`offset=${(spawned?.offset ?? 1) - 1}`)).asOf?.node, null, 'before its first report the node did not exist');

    // By time: the journal's logical time of a change maps back to that change.
    const byTime = await at(`at=${encodeURIComponent(third?.time ?? '')}`);
    t.is(byTime.asOf?.node?.gpuUtilization, 0.3);
    t.true((byTime.asOf?.offset ?? -1) >= (third?.offset ?? 0));
    t.is(byTime.changes, undefined, 'an as-of question alone lists no changes');
    t.is((await at('at=2000-01-01T00:00:00Z')).asOf?.node, null);

    // Ranges page through with limit and next.
    const page1 = await at(`from-offset=0&limit=2`);
    t.deepEqual(page1.changes?.items.map((c) => c.event), ['@spawn', 'telemetry']);
    const page2 = await at(`from-offset=${page1.changes?.next}&limit=2`);
    t.deepEqual(page2.changes?.items.map((c) => c.event), ['reserve', 'telemetry']);
    const bounded = await at(`from-offset=${second?.offset}&to-offset=${third?.offset}`);
    t.deepEqual(bounded.changes?.items.map((c) => c.offset), [second?.offset, reserved?.offset, third?.offset]);
    const timed = await at(`from=${encodeURIComponent(reserved?.time ?? '')}`);
    t.deepEqual(timed.changes?.items[0]?.event, 'reserve');
  });
});

test('history questions that cannot be answered get coded 4xx answers', async (t) => {
  await withHttpRegion(async ({ app }) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: report(0.1, 0) });
    const cases: [string, number, string][] = [
      ['/v1/nodes/ghost/history', 404, 'ARC_ERR_NOT_FOUND'],
      ['/v1/nodes/n1/history?offset=-1', 400, 'ARC_ERR_VALIDATION'],
      ['/v1/nodes/n1/history?at=yesterday', 400, 'ARC_ERR_VALIDATION'],
      ['/v1/nodes/n1/history?at=2026-01-01T00:00:00Z&offset=3', 400, 'ARC_ERR_VALIDATION'],
      ['/v1/nodes/n1/history?limit=100000', 400, 'ARC_ERR_VALIDATION'],
      ['/v1/nodes/n1/history?colour=blue', 400, 'ARC_ERR_VALIDATION'],
    ];
    for (const [url, status, code] of cases) {
      const reply = await app.inject({ method: 'GET', url });
      t.is(reply.statusCode, status, url);
      t.is(reply.json<{ code: string }>().code, code, url);
    }
  });
});

test('node listing pages by id and filters', async (t) => {
  await withHttpRegion(async ({ app }) => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: telemetryBody(id) });
    const first = (await app.inject({ method: 'GET', url: '/v1/nodes?limit=2' })).json<{ nodes: { id: string }[]; next: string | null }>();
    t.deepEqual(first.nodes.map((n) => n.id), ['a', 'b']);
    t.is(first.next, 'b');
    const rest = (await app.inject({ method: 'GET', url: `/v1/nodes?limit=10&after=${first.next}` })).json<{ nodes: { id: string }[]; next: string | null }>();
    t.deepEqual(rest.nodes.map((n) => n.id), ['c', 'd', 'e']);
    t.is(rest.next, null);
    const bad = await app.inject({ method: 'GET', url: '/v1/nodes?status=sleeping' });
    t.is(bad.statusCode, 400);
    t.is(bad.json<{ code: string }>().code, 'ARC_ERR_VALIDATION');
  });
});
