/**
 * Coded errors. Every error a user can see carries a stable `code` (scripts and
 * clients match on it) and a message that says what to do about it.
 */
export const ErrorCodes = {
  /** Input failed schema validation (wrong type, missing field, unknown enum value, extra key). */
  VALIDATION: 'ARC_ERR_VALIDATION',
  /** Input larger than the configured byte limit; rejected before parsing. */
  PAYLOAD_TOO_LARGE: 'ARC_ERR_PAYLOAD_TOO_LARGE',
  /** Input is not valid JSON. */
  MALFORMED_JSON: 'ARC_ERR_MALFORMED_JSON',
  /** Input declares a schema or version this runtime does not read (its x-schema header): send the supported one. */
  UNSUPPORTED_VERSION: 'ARC_ERR_UNSUPPORTED_VERSION',
  /** A shard's bounded input queue is full: retry later. */
  OVERLOADED: 'ARC_ERR_OVERLOADED',
  /** The input names a shard (geozone) this process does not own. */
  UNKNOWN_SHARD: 'ARC_ERR_UNKNOWN_SHARD',
  /** The shard is stopped or failed; it accepts no more input. */
  SHARD_STOPPED: 'ARC_ERR_SHARD_STOPPED',
  /** A journal write failed; the shard stops rather than release an effect that is not durable. */
  JOURNAL_WRITE: 'ARC_ERR_JOURNAL_WRITE',
  /** Released effects could not be handed over (e.g. the acknowledgement log failed); the shard stops. */
  EFFECT_DELIVERY: 'ARC_ERR_EFFECT_DELIVERY',
  /** Replaying a journal produced a state different from the one recorded. */
  REPLAY_DIVERGED: 'ARC_ERR_REPLAY_DIVERGED',
  /** A command-line argument is missing or malformed. */
  USAGE: 'ARC_ERR_USAGE',
  /** A journal directory is missing or holds no journal. */
  NO_JOURNAL: 'ARC_ERR_NO_JOURNAL',
  /** No API key, or one that matches no stored key (HTTP 401). */
  UNAUTHENTICATED: 'ARC_ERR_UNAUTHENTICATED',
  /** The key is valid but its role or geozones do not allow this (HTTP 403). */
  FORBIDDEN: 'ARC_ERR_FORBIDDEN',
  /** The key used up its request budget for now (HTTP 429); retry after the time given. */
  RATE_LIMITED: 'ARC_ERR_RATE_LIMITED',
  /** Something asked for does not exist (HTTP 404). */
  NOT_FOUND: 'ARC_ERR_NOT_FOUND',
  /** The path exists, but not with this request method (HTTP 405; the Allow header lists the methods it has). */
  METHOD_NOT_ALLOWED: 'ARC_ERR_METHOD_NOT_ALLOWED',
  /** A plain request to a WebSocket endpoint (HTTP 426): connect with a WebSocket client. */
  UPGRADE_REQUIRED: 'ARC_ERR_UPGRADE_REQUIRED',
  /** No eligible node anywhere for an inference request (HTTP 503); retry later or with another model. */
  NO_CAPACITY: 'ARC_ERR_NO_CAPACITY',
  /** An inference request id that was already seen from the same geozone (HTTP 409); use a new request id. */
  DUPLICATE_REQUEST: 'ARC_ERR_DUPLICATE_REQUEST',
  /** A training job id already used (by the orchestrator, or by a region for its geozone; HTTP 409): use a new job id. */
  DUPLICATE_JOB: 'ARC_ERR_DUPLICATE_JOB',
  /** The training job has already ended (completed, failed or cancelled): nothing is left to cancel (HTTP 409). */
  JOB_ENDED: 'ARC_ERR_JOB_ENDED',
  /** A console client fell too far behind the live feed and was disconnected. */
  SLOW_CONSUMER: 'ARC_ERR_SLOW_CONSUMER',
  /** A journal failed its integrity check (a record altered, removed or reordered). */
  JOURNAL_TAMPERED: 'ARC_ERR_JOURNAL_TAMPERED',
  /** Data at rest could not be opened with the configured key (wrong key, or none given). */
  DATA_KEY: 'ARC_ERR_DATA_KEY',
  /** TLS settings are incomplete or unreadable (certificate, key or CA files). */
  TLS_CONFIG: 'ARC_ERR_TLS_CONFIG',
  /**
   * The shard's behaviour failed while deciding this input (a bug): the input was
   * refused whole, nothing of it was applied or journaled, and the shard goes on.
   */
  INPUT_REFUSED: 'ARC_ERR_INPUT_REFUSED',
  /** An internal invariant was broken: a bug, never a user error. */
  INVARIANT: 'ARC_ERR_INVARIANT',
  /** A message out of order on a connection (before the hello, or a second hello): the connection is closed. */
  PROTOCOL: 'ARC_ERR_PROTOCOL',
  /** A message about a node other than the one this connection said hello for. */
  NODE_MISMATCH: 'ARC_ERR_NODE_MISMATCH',
  /** A message on a shared input topic has no valid producer signature, or its signer is of another geozone (or node) than it claims. */
  PRODUCER_IDENTITY: 'ARC_ERR_PRODUCER_IDENTITY',
  /** The Kafka cluster refused an ACL request: it runs no authorizer, or this client may not change ACLs. */
  KAFKA_ACL: 'ARC_ERR_KAFKA_ACL',
  /** The data mover (rclone's rcd, Globus) is unreachable or refused a transfer; the message says how to start or fix it. */
  DATA_MOVER: 'ARC_ERR_DATA_MOVER',
  /** The batch queue (Slurm) is unreachable or refused a job; the message says how to start or fix it. */
  BATCH_QUEUE: 'ARC_ERR_BATCH_QUEUE',
  /** A transfer or batch job id the data mover or the queue does not know (HTTP 404 where it surfaces). */
  UNKNOWN_QUEUE_ITEM: 'ARC_ERR_UNKNOWN_QUEUE_ITEM',
  /** A training data set could not be found, read or parsed: fix the dataset-uri or the file. */
  DATASET: 'ARC_ERR_DATASET',
  /** A content-addressed blob (training weights) is not in the store: send the weights inline, or store them first. */
  BLOB_MISSING: 'ARC_ERR_BLOB_MISSING',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class ArcError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArcError';
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Asserts stay on in production: a broken invariant stops the shard instead of corrupting state. */
export function invariant(condition: unknown, message: string, details?: Record<string, unknown>): asserts condition {
  if (!condition) throw new ArcError(ErrorCodes.INVARIANT, message, details);
}
