import { z } from 'zod';
import { codesWithStatus, type StatusOfCode } from '../adapters/http/error-replies.js';
import { errorResponse, jsonResponse, jsonSchemaOf, mediaResponse, type ResponseDoc } from '../adapters/http/response-docs.js';

/**
 * The inspector's answers as zod schemas, and its routes' OpenAPI
 * descriptions made from them (and from the query schemas that validate, in
 * register.ts). Served in the region's document; the inspector's own server
 * (`arcnet inspect`) has no document and ignores them.
 */
const count = z.number().int().nonnegative();
const offset = z.number().int().min(-1);
const kindStateCounts = z.record(z.string(), z.record(z.string(), count)).describe('actors by kind, then by state');

const stateInfo = z.strictObject({
  id: z.string(),
  key: z.string(),
  path: z.string(),
  parent: z.string().nullable(),
  type: z.enum(['atomic', 'compound', 'parallel', 'final', 'history']),
  initial: z.string().nullable(),
  description: z.string().nullable(),
});
const transitionInfo = z.strictObject({
  id: z.string(),
  source: z.string(),
  target: z.string().nullable(),
  event: z.string(),
  guard: z.string().nullable(),
  order: count,
});
const box = { x: z.number(), y: z.number(), width: z.number(), height: z.number() };
const machineDiagram = z.strictObject({
  machine: z.string(),
  width: z.number(),
  height: z.number(),
  nodes: z.array(z.strictObject({ id: z.string(), role: z.enum(['state', 'initial', 'any']), state: stateInfo.nullable(), ...box, internal: z.array(z.string()) })),
  edges: z.array(
    z.strictObject({
      id: z.string(),
      transition: z.string().nullable(),
      points: z.array(z.tuple([z.number(), z.number()])),
      label: z.strictObject({ text: z.string(), ...box }).nullable(),
    }),
  ),
  graph: z.strictObject({ machine: z.string(), root: z.string(), states: z.array(stateInfo), transitions: z.array(transitionInfo) }),
  kind: z.string().nullable(),
});

const actorRow = { id: z.string(), kind: z.string(), state: z.string(), geozone: z.string() };

const journalRecord = z.strictObject({
  offset: count,
  atMs: z.number(),
  actorId: z.string(),
  kind: z.string(),
  event: z.looseObject({ type: z.string() }),
  state: z.string(),
});

export const inspectorAnswers = {
  info: z.strictObject({
    mode: z.enum(['live', 'journal']),
    geozones: z.array(z.string()),
    timeTravel: z.boolean(),
    consolePath: z.string().nullable(),
    key: z.strictObject({ id: z.string(), role: z.string() }),
  }),
  machines: z.strictObject({ machines: z.array(machineDiagram) }),
  counts: z.strictObject({
    geozones: z.array(
      z.strictObject({
        geozone: z.string(),
        atMs: z.number(),
        lastOffset: offset,
        counts: kindStateCounts,
        totals: z.strictObject({ routed: count, rejected: count, expired: count }),
      }),
    ),
  }),
  actors: z.strictObject({ total: count, offset: count, rows: z.array(z.strictObject(actorRow)) }),
  actor: z.strictObject({ ...actorRow, status: z.string(), context: z.unknown() }),
  history: z.strictObject({
    id: z.string(),
    geozone: z.string(),
    entries: z.array(
      z.strictObject({
        offset: count,
        atMs: z.number(),
        event: z.string(),
        state: z.string(),
        details: z.record(z.string(), z.unknown()),
        candidates: z.number().optional(),
        reason: z.string().optional(),
      }),
    ),
    earlier: count.nullable().describe('pass as before for older entries; null at the start of the journal'),
  }),
  map: z.strictObject({
    geozones: z.array(z.strictObject({ geozone: z.string(), nodes: z.array(z.tuple([z.string(), z.string(), z.string()]).describe('[geohash, status, energy source]')) })),
  }),
  range: z.strictObject({
    geozones: z.array(z.strictObject({ geozone: z.string(), firstAtMs: z.number().nullable(), lastAtMs: z.number().nullable(), lastOffset: offset })),
  }),
  at: z.strictObject({
    point: z.strictObject({ atMs: z.number(), offsets: z.record(z.string(), offset), geozone: z.string().optional() }),
    stateHash: z.string().nullable().describe('the whole region\'s hash, for a key that sees every geozone'),
    shards: z.array(
      z.strictObject({ geozone: z.string(), offset, atMs: z.number(), stateHash: z.string(), counts: kindStateCounts, record: journalRecord.optional() }),
    ),
    fromSnapshot: z.record(z.string(), offset),
    replayedRecords: count,
  }),
} as const;

export type InspectorAnswer = keyof typeof inspectorAnswers;

/** The inspector API's route descriptions; the statuses its declaration brings (401/403/429, 405, 500) are added where it is mounted. */
export function describeInspectorRoutes(
  statusOf: StatusOfCode,
  queries: Partial<Record<InspectorAnswer, z.ZodType>>,
): { api: Record<InspectorAnswer, Record<string, unknown>>; page: Record<string, unknown>; asset: Record<string, unknown>; elk: Record<string, unknown> } {
  const error = (status: number, description: string): ResponseDoc => errorResponse(description, codesWithStatus(statusOf, status));
  const notFound = error(404, 'no such actor in the geozones this key reaches (ARC_ERR_NOT_FOUND)');
  const summaries: Record<InspectorAnswer, string> = {
    info: 'What this inspector serves: mode, geozones, time travel, the console path, the caller\'s key',
    machines: 'Every machine as a laid-out statechart diagram',
    counts: 'Actors by kind and state, per geozone',
    actors: 'Actors, filtered and paged (by id)',
    actor: "One actor's state and context",
    history: "One actor's journal entries, newest last",
    map: 'Nodes on the map, per geozone',
    range: "Each geozone's journal range (times and offsets)",
    at: 'The region as of a time or a journal offset (time travel, replayed from the journal)',
  };
  const extra: Partial<Record<InspectorAnswer, Record<number, ResponseDoc>>> = {
    actor: { 404: notFound },
    history: { 404: notFound },
    at: {
      404: error(404, 'no journal for that geozone in the geozones this key reaches (ARC_ERR_NOT_FOUND)'),
      409: error(409, 'a newer time-travel request took its place (ARC_ERR_OVERLOADED)'),
      501: error(501, 'this server has no journal to replay, or not its data key (ARC_ERR_NO_JOURNAL, ARC_ERR_DATA_KEY)'),
      503: error(503, 'a shard stopped (ARC_ERR_SHARD_STOPPED)'),
    },
  };
  const describe = (name: InspectorAnswer): Record<string, unknown> => {
    const query = queries[name];
    return {
      tags: ['inspector'],
      summary: summaries[name],
      ...(query === undefined ? {} : { querystring: jsonSchemaOf(query, 'input') }),
      response: { 200: jsonResponse('the answer', inspectorAnswers[name]), ...extra[name] },
    };
  };
  const api = {} as Record<InspectorAnswer, Record<string, unknown>>;
  for (const name of Object.keys(inspectorAnswers) as InspectorAnswer[]) api[name] = describe(name);
  return {
    api,
    page: { tags: ['inspector'], summary: 'The inspector page (public: it holds no data and asks for a key)', response: { 200: mediaResponse('the page', ['text/html']) } },
    asset: {
      tags: ['inspector'],
      summary: "One of the page's files",
      params: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
      response: {
        200: mediaResponse('the file', ['text/javascript', 'text/css', 'image/svg+xml', 'text/html']),
        404: errorResponse('no such file (ARC_ERR_NOT_FOUND)', codesWithStatus(statusOf, 404)),
      },
    },
    elk: { tags: ['inspector'], summary: 'The elkjs bundle, for a page that lays out graphs itself', response: { 200: mediaResponse('the script', ['text/javascript']) } },
  };
}
