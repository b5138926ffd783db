import type { FastifyReply } from 'fastify';
import { ArcError, ErrorCodes, type ErrorCode } from '../../runtime/errors.js';

/**
 * How the HTTP API answers errors: always an ArcError's JSON body
 * (`{ code, message, details? }`) with the status its code maps to here.
 * fastify's own refusals (body parsing, undecodable URLs) are turned into the
 * same shape, so a client never sees a body of another form. The OpenAPI
 * document lists, per status, the codes this table sends with it.
 */
export type StatusOfCode = Readonly<Partial<Record<ErrorCode, number>>>;

/** The region API's statuses by code; a code not listed is a 500. */
export const regionStatusOf: StatusOfCode = {
  [ErrorCodes.VALIDATION]: 400,
  [ErrorCodes.MALFORMED_JSON]: 400,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCodes.OVERLOADED]: 503,
  [ErrorCodes.UNKNOWN_SHARD]: 422,
  [ErrorCodes.SHARD_STOPPED]: 503,
  [ErrorCodes.JOURNAL_WRITE]: 503,
  [ErrorCodes.UNAUTHENTICATED]: 401,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.RATE_LIMITED]: 429,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.METHOD_NOT_ALLOWED]: 405,
  [ErrorCodes.UPGRADE_REQUIRED]: 426,
  [ErrorCodes.DUPLICATE_JOB]: 409,
  [ErrorCodes.JOB_ENDED]: 409,
  [ErrorCodes.REPLAY_DIVERGED]: 500,
  // A behaviour threw while deciding: nothing was applied; a fault of the region, not of the request.
  [ErrorCodes.INPUT_REFUSED]: 500,
  [ErrorCodes.DATASET]: 422,
  [ErrorCodes.BLOB_MISSING]: 422,
};

/** The codes a table answers with a status (for the document); 500 also carries any code the table does not map. */
export function codesWithStatus(statusOf: StatusOfCode, status: number): ErrorCode[] {
  return (Object.entries(statusOf) as [ErrorCode, number][]).filter(([, s]) => s === status).map(([code]) => code);
}

export interface ErrorReply {
  readonly status: number;
  readonly body: ReturnType<ArcError['toJSON']>;
}

/** fastify refused the request before any route ran: its status, and the coded error that says why. */
function fromFastify(error: { code?: unknown; statusCode?: unknown; message?: unknown }): ErrorReply | undefined {
  const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
  if (error.code === 'FST_ERR_BAD_URL') {
    return { status: 400, body: { code: ErrorCodes.VALIDATION, message: 'the URL path is not valid percent-encoded UTF-8' } };
  }
  if (status === 413) return { status: 413, body: { code: ErrorCodes.PAYLOAD_TOO_LARGE, message: 'request body is over the size limit' } };
  if (status === 415) return { status: 415, body: { code: ErrorCodes.VALIDATION, message: 'send application/json' } };
  if (error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return { status: 400, body: { code: ErrorCodes.VALIDATION, message: 'the body does not match its content-length, or is empty' } };
  }
  // Any other client error fastify raises (a QUERY without a content-type, for one) is a bad request, never a 500.
  if (status >= 400 && status < 500) {
    return { status: 400, body: { code: ErrorCodes.VALIDATION, message: `the request was refused before reaching the API: ${String(error.message)}` } };
  }
  return undefined;
}

export function errorReplyOf(error: unknown, statusOf: StatusOfCode = regionStatusOf): ErrorReply {
  if (error instanceof ArcError) return { status: statusOf[error.code] ?? 500, body: error.toJSON() };
  if (typeof error === 'object' && error !== null) {
    const fastify = fromFastify(error);
    if (fastify !== undefined) return fastify;
  }
  return { status: 500, body: { code: ErrorCodes.INVARIANT, message: 'internal error' } };
}

export function sendError(reply: FastifyReply, error: unknown, statusOf: StatusOfCode = regionStatusOf): FastifyReply {
  const { status, body } = errorReplyOf(error, statusOf);
  return reply.code(status).send(body);
}
