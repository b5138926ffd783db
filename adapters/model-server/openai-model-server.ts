import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * An OpenAI-compatible model server (llama.cpp's `llama-server`, vLLM, TGI's
 * OpenAI front, ...) as the node agent uses it: `GET /v1/models` for what it
 * serves, `POST /v1/completions` to run a request. Node's own fetch, no library.
 *
 * Every call has a timeout, and answers are read up to a byte limit: a model
 * server that hangs or streams without end must not hold a dispatch (or the
 * agent's memory) for ever.
 */
export interface ModelServerOptions {
  /** Base URL, e.g. http://127.0.0.1:8000 (a trailing `/v1` is accepted too). */
  readonly baseUrl: string;
  /** Per call (ms). */
  readonly timeoutMs: number;
  /** Largest answer body read (bytes). */
  readonly maxResponseBytes: number;
}

export interface CompletionRequest {
  readonly model: string;
  readonly prompt: string;
  readonly maxTokens: number;
}

/** The outcome of one completion call. `ok: false` carries why (HTTP status, timeout, connection). */
export type CompletionOutcome = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly reason: string };

export class OpenAiModelServer {
  private readonly base: string;

  constructor(private readonly options: ModelServerOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new ArcError(ErrorCodes.USAGE, `--model-server ${options.baseUrl} is not a URL (e.g. http://127.0.0.1:8000)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ArcError(ErrorCodes.USAGE, `--model-server must be http:// or https://, got ${url.protocol}`);
    this.base = url.href.replace(/\/+$/, '').replace(/\/v1$/, '');
  }

  /** Model ids the server serves; throws when it cannot say (down, slow, not OpenAI-shaped). */
  async listModels(signal?: AbortSignal): Promise<string[]> {
    const body = await this.call('GET', '/v1/models', undefined, signal);
    const data = (body as { data?: unknown }).data;
    if (!Array.isArray(data)) throw new Error('GET /v1/models answered without a data list');
    return data.flatMap((entry) => (typeof entry === 'object' && entry !== null && typeof (entry as { id?: unknown }).id === 'string' ? [(entry as { id: string }).id] : []));
  }

  /** Runs one completion; never throws (a failure is an outcome the agent reports). */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<CompletionOutcome> {
    try {
      const body = await this.call('POST', '/v1/completions', { model: request.model, prompt: request.prompt, max_tokens: request.maxTokens, stream: false }, signal);
      const choices = (body as { choices?: unknown }).choices;
      const first: unknown = Array.isArray(choices) ? choices[0] : undefined;
      const text = typeof first === 'object' && first !== null ? (first as { text?: unknown }).text : undefined;
      if (typeof text !== 'string') return { ok: false, reason: 'the completion answer has no choices[0].text' };
      return { ok: true, text };
    } catch (error) {
      return { ok: false, reason: error instanceof Error ? error.message : String(error) };
    }
  }

  private async call(method: 'GET' | 'POST', path: string, body: unknown, outer?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = outer === undefined ? timeout : AbortSignal.any([timeout, outer]);
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        signal,
        headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      if (timeout.aborted) throw new Error(`${method} ${path} timed out after ${this.options.timeoutMs} ms`);
      if (outer?.aborted === true) throw new Error(`${method} ${path} was abandoned (the agent is stopping)`);
      throw new Error(`${method} ${path} failed: ${causeOf(error)}`);
    }
    const text = await this.readLimited(response, signal, `${method} ${path}`);
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 200)}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${method} ${path} answered something that is not JSON`);
    }
  }

  private async readLimited(response: Response, signal: AbortSignal, what: string): Promise<string> {
    if (response.body === null) return '';
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    try {
      // Leaving the loop early (too large) cancels the stream.
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        if (bytes > this.options.maxResponseBytes) throw new Error(`${what} answered more than ${this.options.maxResponseBytes} bytes`);
        chunks.push(chunk);
      }
    } catch (error) {
      if (signal.aborted) throw new Error(`${what} timed out or was abandoned while answering`);
      throw error;
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
