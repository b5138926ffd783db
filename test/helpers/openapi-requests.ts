import fc from 'fast-check';
import type { JsonSchema, Operation } from './openapi-contract.js';

/**
 * Requests made from an OpenAPI document with fast-check: values from each
 * parameter's and body's JSON Schema (valid by construction), mixed with
 * values the schema refuses (wrong types, extra and missing keys, bad
 * encodings, oversized and non-JSON bodies, other content types, other
 * methods). `hints` bias named fields towards values the server knows (ids
 * of existing nodes, owned geozones) so that valid requests also reach the
 * deeper answers (200s, 409s, 422s), not only 404s.
 */
export type Hints = Readonly<Record<string, fc.Arbitrary<unknown>>>;

export interface ApiRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: string;
}

const INT_RANGE = 2 ** 31 - 1;
const num = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);

/** Values a JSON Schema accepts (for the subset zod writes: types, enums, bounds, patterns, date-time, objects, arrays, unions). */
export function valuesOf(schema: JsonSchema, hints: Hints = {}, name?: string): fc.Arbitrary<unknown> {
  const hinted = name === undefined ? undefined : hints[name];
  const generic = genericValuesOf(schema, hints);
  return hinted === undefined ? generic : fc.oneof({ weight: 4, arbitrary: hinted }, { weight: 1, arbitrary: generic });
}

function genericValuesOf(schema: JsonSchema, hints: Hints): fc.Arbitrary<unknown> {
  if ('const' in schema) return fc.constant(schema['const']);
  if (Array.isArray(schema['enum'])) return fc.constantFrom(...(schema['enum'] as unknown[]));
  for (const union of ['anyOf', 'oneOf'] as const) {
    const options = schema[union];
    if (Array.isArray(options)) return fc.oneof(...(options as JsonSchema[]).map((option) => valuesOf(option, hints)));
  }
  const type = schema['type'];
  if (Array.isArray(type)) return fc.oneof(...(type as string[]).map((t) => genericValuesOf({ ...schema, type: t }, hints)));
  switch (type) {
    case 'string':
      return stringsOf(schema);
    case 'integer': {
      const min = Math.max(-INT_RANGE, num(schema['minimum']) ?? (num(schema['exclusiveMinimum']) ?? -INT_RANGE - 1) + 1);
      const max = Math.min(INT_RANGE, num(schema['maximum']) ?? (num(schema['exclusiveMaximum']) ?? INT_RANGE + 1) - 1);
      return fc.integer({ min, max });
    }
    case 'number': {
      const min = num(schema['minimum']) ?? num(schema['exclusiveMinimum']) ?? -1e9;
      const max = num(schema['maximum']) ?? num(schema['exclusiveMaximum']) ?? 1e9;
      return fc
        .double({ min, max, noNaN: true, noDefaultInfinity: true })
        .filter((n) => n !== num(schema['exclusiveMinimum']) && n !== num(schema['exclusiveMaximum']) && !Object.is(n, -0));
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const items = (schema['items'] as JsonSchema | undefined) ?? {};
      return fc.array(valuesOf(items, hints), { minLength: num(schema['minItems']) ?? 0, maxLength: Math.min(num(schema['maxItems']) ?? 4, 4) });
    }
    case 'object': {
      const properties = (schema['properties'] as Record<string, JsonSchema> | undefined) ?? {};
      const shape = Object.fromEntries(Object.entries(properties).map(([key, property]) => [key, valuesOf(property, hints, key)]));
      return fc.record(shape, { requiredKeys: (schema['required'] as string[] | undefined) ?? [] });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

function stringsOf(schema: JsonSchema): fc.Arbitrary<string> {
  const minLength = num(schema['minLength']) ?? 0;
  const maxLength = Math.min(num(schema['maxLength']) ?? 40, 200);
  if (schema['format'] === 'date-time') {
    return fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
  }
  const pattern = schema['pattern'];
  if (typeof pattern === 'string') {
    return fc.stringMatching(new RegExp(pattern)).filter((s) => s.length >= minLength && s.length <= maxLength);
  }
  return fc.string({ minLength, maxLength, unit: 'grapheme' });
}

/** Values the schema refuses, or the valid value broken one way. */
export function brokenValuesOf(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.tuple(valid, fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })).map(([value, key, extra]) =>
      typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...value, [`x-${key}`]: extra } : [value, extra],
    ),
    fc.tuple(valid, fc.nat()).map(([value, n]) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return String(value);
      const keys = Object.keys(value);
      if (keys.length === 0) return { unexpected: true };
      const drop = keys[n % keys.length] as string;
      const { [drop]: _dropped, ...rest } = value as Record<string, unknown>;
      return rest;
    }),
    fc.tuple(valid, fc.nat(), fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.double(), fc.array(fc.string()))).map(([value, n, wrong]) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return wrong;
      const keys = Object.keys(value);
      return keys.length === 0 ? wrong : { ...value, [keys[n % keys.length] as string]: wrong };
    }),
  );
}

/** A query-string or path value: schema values are sent as their text. */
const asText = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value) ?? 'null');

const pathValue = (schema: JsonSchema, hints: Hints, name: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: valuesOf(schema, hints, name).map((v) => encodeURIComponent(asText(v))) },
    { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).map(encodeURIComponent) },
    // Percent-encoding that decodes to no UTF-8 at all.
    { weight: 1, arbitrary: fc.constantFrom('%E0%A4', '%FF', '%C3%28') },
    { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 500 }).map(encodeURIComponent) },
  );

function queryOf(operation: Operation, hints: Hints): fc.Arbitrary<string> {
  const parameters = operation.parameters.filter((p) => p.in === 'query');
  const each = parameters.map((p) =>
    fc.option(
      fc.oneof(
        { weight: 5, arbitrary: valuesOf(p.schema, hints, p.name).map(asText) },
        { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
      ),
      { freq: 2 },
    ),
  );
  const extra = fc.option(fc.tuple(fc.constantFrom('unknown', 'limit', 'geozone', 'x'), fc.string({ maxLength: 10 })), { freq: 6 });
  return fc.tuple(fc.tuple(...each), extra).map(([values, more]) => {
    const search = new URLSearchParams();
    parameters.forEach((p, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) search.append(p.name, value);
    });
    if (more !== null) search.append(more[0], more[1]);
    const text = search.toString();
    return text === '' ? '' : `?${text}`;
  });
}

function pathOf(operation: Operation, hints: Hints): fc.Arbitrary<string> {
  const names = [...operation.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
  if (names.length === 0) return fc.constant(operation.path);
  const schemaOf = (name: string): JsonSchema => operation.parameters.find((p) => p.in === 'path' && p.name === name)?.schema ?? { type: 'string' };
  return fc.tuple(...names.map((name) => pathValue(schemaOf(name), hints, name))).map((values) => {
    let path = operation.path;
    names.forEach((name, i) => (path = path.replace(`{${name}}`, values[i] as string)));
    return path;
  });
}

const MAX_BODY_BYTES = 16 * 1024;

function bodyOf(operation: Operation, hints: Hints): fc.Arbitrary<{ payload?: string; contentType?: string }> {
  const valid = operation.body === undefined ? fc.constant({}) : valuesOf(operation.body, hints);
  const json = fc.oneof(
    { weight: 6, arbitrary: valid },
    { weight: 4, arbitrary: brokenValuesOf(valid) },
  ).map((value) => JSON.stringify(value));
  const payload = fc.oneof(
    { weight: 10, arbitrary: json },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constant('') },
    // Over the limit: refused before parsing.
    { weight: 1, arbitrary: fc.integer({ min: MAX_BODY_BYTES + 1, max: 4 * MAX_BODY_BYTES }).map((n) => JSON.stringify({ pad: 'x'.repeat(n) })) },
  );
  const contentType = fc.oneof(
    { weight: 10, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; =', 'multipart/form-data') },
  );
  if (operation.body === undefined) {
    // Operations without a body mostly get none; sometimes one anyway.
    return fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.record({ payload, contentType }) });
  }
  return fc.oneof(
    { weight: 12, arbitrary: fc.record({ payload, contentType }) },
    { weight: 1, arbitrary: fc.record({ payload }) },
  );
}

/** Methods sent to a path besides its own: common ones, and ones fastify routes nowhere. */
export const otherMethods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'QUERY', 'PROPFIND', 'MKCOL', 'SEARCH'] as const;

/** Requests for one operation: mostly its own method, with valid or broken path, query, body and content type. */
export function requestsFor(operation: Operation, hints: Hints, authorizations: fc.Arbitrary<Record<string, string>>): fc.Arbitrary<ApiRequest> {
  const method = fc.oneof({ weight: 12, arbitrary: fc.constant(operation.method) }, { weight: 1, arbitrary: fc.constantFrom(...otherMethods) });
  return fc.record({ method, path: pathOf(operation, hints), query: queryOf(operation, hints), body: bodyOf(operation, hints), auth: authorizations }).map(({ method: m, path, query, body, auth }) => ({
    method: m,
    url: `${path}${query}`,
    headers: { ...auth, ...(body.contentType === undefined ? {} : { 'content-type': body.contentType }) },
    ...(body.payload === undefined ? {} : { payload: body.payload }),
  }));
}

/** Paths the document does not have: a documented path with a segment more, or an unknown one under it. */
export function unknownPaths(operations: readonly Operation[]): fc.Arbitrary<string> {
  const base = fc.constantFrom(...operations.map((o) => o.path.replace(/\{[^}]+\}/g, 'x')));
  return fc.oneof(
    fc.tuple(base, fc.stringMatching(/^[a-z0-9]{1,12}$/)).map(([path, extra]) => `${path}/${extra}-nope`),
    fc.stringMatching(/^[a-z0-9]{1,12}$/).map((s) => `/v1/${s}-nope`),
    fc.constantFrom('/', '/v2/nodes', '/V1/NODES', '/healthz/', '/%E0%A4'),
  );
}
