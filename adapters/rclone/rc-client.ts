import { ArcError, ErrorCodes } from '../../runtime/errors.js';

export interface RcCredentials {
  readonly user: string;
  readonly password: string;
}

export interface RcClientOptions {
  /** rclone rcd's URL, e.g. http://127.0.0.1:5572/ */
  readonly url: string;
  /** Basic auth for the rc API; undefined only for an rcd started with --rc-no-auth. */
  readonly credentials?: RcCredentials | undefined;
  /** One rc call may take this long (a checksum listing of a large dataset takes the longest). */
  readonly requestTimeoutMs?: number;
}

/** An rc error answer: rclone's own message and the HTTP status it chose (404: not found, 500: failed). */
export class RcCallError extends Error {
  readonly status: number;
  readonly path: string;

  constructor(path: string, status: number, message: string) {
    super(message);
    this.name = 'RcCallError';
    this.status = status;
    this.path = path;
  }
}

const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
/** Largest rc answer read (a listing of MAX_VERIFY_FILES entries with hashes fits well inside). */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
const START_HINT = 'start it with `npm run hpc:start`, or set ARCNET_RCLONE_RC_URL and ARCNET_RCLONE_RC_CREDENTIALS to your rcd';

/**
 * A minimal client of rclone's remote-control API (JSON POSTs, Basic auth) on node's fetch.
 * Transport trouble becomes ARC_ERR_DATA_MOVER saying what to do; an answer rclone marks as an
 * error becomes an RcCallError for the caller to interpret (a missing job is not a broken mover).
 */
export class RcClient {
  private readonly url: string;
  private readonly authorization: string | undefined;
  private readonly requestTimeoutMs: number;

  constructor(options: RcClientOptions) {
    this.url = options.url.endsWith('/') ? options.url : `${options.url}/`;
    this.authorization =
      options.credentials === undefined ? undefined : `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString('base64')}`;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  get baseUrl(): string {
    return this.url;
  }

  async call<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.authorization === undefined ? {} : { authorization: this.authorization }) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (err) {
      const why = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${this.requestTimeoutMs} ms` : 'not reachable';
      throw new ArcError(ErrorCodes.DATA_MOVER, `rclone's rcd at ${this.url} is ${why} (${path}): ${START_HINT}`, { url: this.url, path }, { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new ArcError(
        ErrorCodes.DATA_MOVER,
        `rclone's rcd at ${this.url} refused our credentials (HTTP ${res.status}): use the credentials file the rcd was started with (ARCNET_RCLONE_RC_CREDENTIALS; npm run hpc:start writes .hpc/rclone/rc-credentials.json)`,
        { url: this.url, path },
      );
    }
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > MAX_RESPONSE_BYTES) {
      await res.body?.cancel();
      throw new ArcError(ErrorCodes.DATA_MOVER, `rclone's answer to ${path} is ${length} bytes, more than the ${MAX_RESPONSE_BYTES} read`, { path });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ArcError(ErrorCodes.DATA_MOVER, `rclone's rcd at ${this.url} answered ${path} with something that is not JSON (HTTP ${res.status}): is that URL an rclone rcd?`, { path });
    }
    if (!res.ok) {
      const message = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? String(parsed.error) : text.slice(0, 500);
      throw new RcCallError(path, res.status, message);
    }
    return parsed as T;
  }
}
