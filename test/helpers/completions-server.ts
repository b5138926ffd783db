import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP server speaking the OpenAI completions shape (`GET /v1/models`,
 * `POST /v1/completions`), for tests of the node agent: no model weights can be
 * downloaded on these machines, so this stands where llama.cpp's server or vLLM
 * would. It answers after `delayMs` (changeable mid-test), or with HTTP 500 when
 * `failing`, and counts the completions asked of it.
 */
export interface CompletionsServer {
  readonly url: string;
  delayMs: number;
  failing: boolean;
  /** Request bodies of POST /v1/completions, in arrival order. */
  readonly completions: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startCompletionsServer(models: readonly string[], options: { delayMs?: number; failing?: boolean } = {}): Promise<CompletionsServer> {
  const state = { delayMs: options.delayMs ?? 0, failing: options.failing ?? false };
  const completions: Record<string, unknown>[] = [];
  const server: Server = createServer((request, response) => {
    const json = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (request.method === 'GET' && request.url === '/v1/models') {
      return json(200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: 'test' })) });
    }
    if (request.method !== 'POST' || request.url !== '/v1/completions') return json(404, { error: { message: 'not found' } });
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      completions.push(parsed);
      setTimeout(() => {
        if (state.failing) return json(500, { error: { message: 'model crashed', type: 'server_error' } });
        json(200, {
          id: `cmpl-${completions.length}`,
          object: 'text_completion',
          created: Math.floor(Date.now() / 1000),
          model: parsed['model'],
          choices: [{ index: 0, text: ' a completion', finish_reason: 'length', logprobs: null }],
          usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
        });
      }, state.delayMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    get failing() {
      return state.failing;
    },
    set failing(value: boolean) {
      state.failing = value;
    },
    completions,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
