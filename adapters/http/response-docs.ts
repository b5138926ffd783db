import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ErrorCodes, type ErrorCode } from '../../runtime/errors.js';
import { codesWithStatus, regionStatusOf } from './error-replies.js';

/**
 * The responses of the OpenAPI document, made from zod schemas: route
 * schemas state what is theirs (their bodies, 404, 409, 503...), and
 * `documentStandardResponses` adds what follows from how a route is declared
 * (a permission brings 401/403/429, a body 413/415, any route 405 and 500),
 * so no route can forget a status its declaration makes possible.
 */
export type ResponseDoc = Record<string, unknown>;

/** A zod schema as the JSON Schema (2020-12) an OpenAPI 3.1 document holds. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const everyCode = Object.values(ErrorCodes) as [ErrorCode, ...ErrorCode[]];

/** The body of every coded error: ArcError.toJSON(), its code one of `codes`. */
export function errorBodySchema(codes: readonly string[]): z.ZodType {
  const [first, ...rest] = codes;
  return z.strictObject({
    code: first === undefined ? z.enum(everyCode) : z.enum([first, ...rest]),
    message: z.string().describe('what went wrong and what to do about it'),
    details: z.record(z.string(), z.unknown()).optional().describe('facts about the error (sizes, limits, offsets), when it has any'),
  });
}

/** A header a response carries (the document lists it under the response). */
export interface HeaderDoc {
  readonly type: 'string';
  readonly description: string;
}

export const headerDocs = {
  allow: { type: 'string', description: 'the methods this path takes, comma-separated' },
  wwwAuthenticate: { type: 'string', description: 'Bearer realm="arcnet"' },
  retryAfter: { type: 'string', description: 'seconds until the key has budget again' },
} as const satisfies Record<string, HeaderDoc>;

/** A documented JSON response: description, body schema, headers. */
export function jsonResponse(description: string, schema: z.ZodType, headers?: Record<string, HeaderDoc>): ResponseDoc {
  return { 'x-response-description': description, ...(headers === undefined ? {} : { headers }), ...jsonSchemaOf(schema) };
}

/** A coded-error response with the codes a status is sent with. */
export function errorResponse(description: string, codes: readonly string[], headers?: Record<string, HeaderDoc>): ResponseDoc {
  return jsonResponse(description, errorBodySchema(codes), headers);
}

/** A response whose body is not JSON (text, a page, a script), by media type. */
export function mediaResponse(description: string, mediaTypes: readonly string[]): ResponseDoc {
  return { description, content: Object.fromEntries(mediaTypes.map((type) => [type, { schema: { type: 'string' } }])) };
}

const codes = (status: number): ErrorCode[] => codesWithStatus(regionStatusOf, status);

/** The statuses a route's declaration makes possible, whatever its handler does. */
const standard = {
  badRequest: () => errorResponse('the URL, query or body failed validation (ARC_ERR_VALIDATION, ARC_ERR_MALFORMED_JSON)', codes(400)),
  unauthenticated: () => errorResponse('no API key, or an unknown one (ARC_ERR_UNAUTHENTICATED)', codes(401), { 'www-authenticate': headerDocs.wwwAuthenticate }),
  forbidden: () => errorResponse("the key's role or geozones do not allow this (ARC_ERR_FORBIDDEN)", codes(403)),
  methodNotAllowed: () =>
    errorResponse('a method this path does not take (ARC_ERR_METHOD_NOT_ALLOWED); the Allow header lists those it does', codes(405), { allow: headerDocs.allow }),
  tooLarge: () => errorResponse('body over the size limit, refused before parsing (ARC_ERR_PAYLOAD_TOO_LARGE)', codes(413)),
  mediaType: () => errorResponse('a body that is not application/json (ARC_ERR_VALIDATION)', [ErrorCodes.VALIDATION]),
  rateLimited: () => errorResponse("the key's request budget is spent; see Retry-After (ARC_ERR_RATE_LIMITED)", codes(429), { 'retry-after': headerDocs.retryAfter }),
  internal: () => errorResponse('a fault of the server, never of the request (the code says which)', []),
};

const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'QUERY']);

/**
 * Completes every documented route's responses as it is registered (an
 * onRoute hook: install before the routes). A status the route documents
 * itself is kept as it is.
 */
export function documentStandardResponses(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    if (schema === undefined || schema['hide'] === true) return;
    const methods = [route.method].flat().map((m) => m.toUpperCase());
    const guarded = (route.config as { permission?: string } | undefined)?.permission !== undefined;
    const takesBody = methods.some((m) => bodyMethods.has(m));
    const takesInput = takesBody || route.url.includes(':') || route.url.includes('*') || schema['querystring'] !== undefined;
    const added: Record<number, ResponseDoc> = { 405: standard.methodNotAllowed(), 500: standard.internal() };
    if (takesInput) added[400] = standard.badRequest();
    if (guarded) Object.assign(added, { 401: standard.unauthenticated(), 403: standard.forbidden(), 429: standard.rateLimited() });
    if (takesBody) Object.assign(added, { 413: standard.tooLarge(), 415: standard.mediaType() });
    const own = (schema['response'] ?? {}) as Record<string, ResponseDoc>;
    route.schema = {
      ...schema,
      ...(guarded && schema['security'] === undefined ? { security: [{ apiKey: [] }] } : {}),
      response: { ...added, ...own },
    };
  });
}
