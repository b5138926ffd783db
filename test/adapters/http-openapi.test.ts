import test from 'ava';
import fc from 'fast-check';
import { z } from 'zod';
import { inferenceRequestSchema, nodeTelemetrySchema } from '../../actors/wire.js';
import { inferenceBody, jsonHeaders, telemetryBody, withHttpRegion } from '../helpers/http-region.js';

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> }; security?: unknown[] }>>;
}

test('the OpenAPI document describes every route, its bodies made from the schemas that validate them; /docs browses it', async (t) => {
  await withHttpRegion(async ({ app }) => {
    const reply = await app.inject({ method: 'GET', url: '/openapi.json' });
    t.is(reply.statusCode, 200);
    const doc = reply.json<OpenApi>();
    t.is(doc.openapi, '3.1.0');
    for (const path of ['/healthz', '/readyz', '/v1/inference', '/v1/telemetry', '/v1/results', '/v1/nodes', '/v1/nodes/{id}', '/v1/nodes/{id}/history', '/v1/reservations/{id}', '/v1/summary', '/v1/nodes/{id}/drain', '/v1/nodes/{id}/resume', '/v1/console/tickets', '/metrics']) {
      t.truthy(doc.paths[path], `${path} is documented`);
    }
    const bodyOf = (path: string): Record<string, unknown> | undefined => doc.paths[path]?.['post']?.requestBody?.content['application/json']?.schema;
    const expected = (schema: z.ZodType): Record<string, unknown> => {
      const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
      return rest;
    };
    t.deepEqual(bodyOf('/v1/inference'), expected(inferenceRequestSchema));
    t.deepEqual(bodyOf('/v1/telemetry'), expected(nodeTelemetrySchema));
    t.truthy(doc.paths['/v1/inference']?.['post']?.security, 'the inference route says it needs a key');

    const docs = await app.inject({ method: 'GET', url: '/docs/' });
    const page = docs.statusCode === 302 ? await app.inject({ method: 'GET', url: String(docs.headers.location) }) : docs;
    t.is(page.statusCode, 200);
    t.regex(page.body, /swagger/i);
  });
});

// Bodies of any shape: JSON values near the real schemas (right keys, wrong values), arbitrary JSON, and raw text.
const nearTelemetry = fc.record(
  {
    'node-id': fc.oneof(fc.string(), fc.constant('n1'), fc.integer()),
    geozone: fc.oneof(fc.constant('CAISO'), fc.string(), fc.constant(null)),
    geohash: fc.oneof(fc.constant('9q9hvu'), fc.string()),
    'energy-source': fc.oneof(fc.constantFrom('cogen', 'grid', 'battery'), fc.string()),
    'battery-level': fc.oneof(fc.double(), fc.string()),
    'gpu-utilization': fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.double()),
    'models-loaded': fc.oneof(fc.array(fc.string()), fc.string()),
    timestamp: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  nearTelemetry.map((v) => JSON.stringify(v)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
);

test('fuzzed bodies never crash the server: every bad one gets a 4xx with a code, and no actor is touched by it', async (t) => {
  await withHttpRegion(async ({ app, region }) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: telemetryBody('n1') });
    const before = region.supervisor.stateHash();
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/v1/telemetry', '/v1/inference', '/v1/results'), body, async (url, payload) => {
        const reply = await app.inject({ method: 'POST', url, headers: jsonHeaders, payload });
        if (reply.statusCode === 202 || reply.statusCode === 503) return; // a body that happens to be valid
        refused++;
        if (reply.statusCode < 400 || reply.statusCode >= 500) throw new Error(`${url} answered ${reply.statusCode}: ${reply.body}`);
        const answer = reply.json<{ code?: unknown }>();
        if (typeof answer.code !== 'string' || !answer.code.startsWith('ARC_ERR_')) throw new Error(`no code in ${reply.body}`);
      }),
      { numRuns: 400, seed: 20261127 },
    );
    t.true(refused > 300, `most fuzzed bodies are refused (${refused})`);
    t.is(region.supervisor.stateHash(), before, 'refused bodies changed no state');
    // And the server still serves.
    t.is((await app.inject({ method: 'POST', url: '/v1/inference', headers: jsonHeaders, payload: inferenceBody('after-fuzz') })).statusCode, 202);
  });
});

test('fuzzed query strings get coded 400s, never a crash', async (t) => {
  await withHttpRegion(async ({ app }) => {
    await app.inject({ method: 'POST', url: '/v1/telemetry', headers: jsonHeaders, payload: telemetryBody('n1') });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/v1/nodes', '/v1/nodes/n1/history'), fc.dictionary(fc.constantFrom('limit', 'after', 'status', 'offset', 'at', 'from', 'to-offset', 'x'), fc.string()), async (path, query) => {
        const reply = await app.inject({ method: 'GET', url: path, query });
        if (reply.statusCode === 200) return;
        if (reply.statusCode !== 400 && reply.statusCode !== 403) throw new Error(`${path}?${JSON.stringify(query)} answered ${reply.statusCode}: ${reply.body}`);
        if (!String(reply.json<{ code?: unknown }>().code).startsWith('ARC_ERR_')) throw new Error(`no code: ${reply.body}`);
      }),
      { numRuns: 300, seed: 7 },
    );
    t.pass();
  });
});
