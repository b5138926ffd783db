import Fastify from 'fastify';
import { parseArgs } from 'node:util';
import { installGuard } from '../adapters/http/guard-hook.js';
import { loadDataKey } from '../adapters/lmdb/data-key.js';
import { ApiKeyStore } from '../adapters/security/api-keys.js';
import { createKeyGuard } from '../adapters/security/key-guard.js';
import { RateLimiter } from '../adapters/security/rate-limiter.js';
import { TicketBook } from '../adapters/security/tickets.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { registerInspector } from '../inspector/register.js';
import { journalInspectorSource } from '../inspector/source.js';

export const inspectUsage = `arcnet inspect --journal DIR [--port 8090] [--api-keys FILE] [--data-key-file FILE]
    Serve the state-machine inspector over a data folder at http://127.0.0.1:PORT/inspector: the region
    as the folder holds it (recovered read-only, nothing runs), its actors and their journal history, and
    time travel to any offset or time. With --api-keys the page's API needs a key with the read permission
    (give it in the page, or as /inspector#key=...); without, it is open (loopback only).
    Encrypted stores: --data-key-file FILE or ARCNET_DATA_KEY (hex).
`;

/** A key's request budget on the inspector: generous, the page pages through lists while scrolling. */
const INSPECTOR_BUDGET = { ratePerSec: 100, burst: 400 };

/** `arcnet inspect ...`: prints one JSON line with the page's URL, then serves until SIGTERM/SIGINT. */
export async function runInspectCommand(args: string[]): Promise<void> {
  const values = parse(args);
  const dir = values.journal;
  if (dir === undefined || dir === '') throw new ArcError(ErrorCodes.USAGE, `missing --journal\n\n${inspectUsage}`);
  const port = values.port === undefined ? 8090 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ArcError(ErrorCodes.USAGE, `--port must be 0..65535, got '${values.port}'`);
  const dataKey = loadDataKey({ ...(values['data-key-file'] === undefined ? {} : { file: values['data-key-file'] }), env: process.env });
  const keys = values['api-keys'] === undefined ? undefined : ApiKeyStore.fromFile(values['api-keys']);

  const source = journalInspectorSource(dir, { dataKey });
  const app = Fastify({ logger: false });
  const guard =
    keys === undefined
      ? undefined
      : createKeyGuard({
          keys,
          limiter: new RateLimiter(INSPECTOR_BUDGET),
          tickets: new TicketBook(),
          nowMs: () => Date.now(),
          // The refusal, never the key.
          onRefused: (refusal, context) => process.stderr.write(`arcnet inspect: refused ${context.method} ${context.path}: ${refusal.code}${context.keyId === undefined ? '' : ` (key ${context.keyId})`}\n`),
        });
  const routes = installGuard(app, guard);
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ code: ErrorCodes.NOT_FOUND, message: 'no such route' }));
  registerInspector(app, { source, routes });
  const address = await app.listen({ host: '127.0.0.1', port });
  process.stdout.write(`${JSON.stringify({ inspector: `${address}/inspector`, mode: source.mode, geozones: source.geozones(() => true), apiKeys: keys !== undefined, timeTravel: source.timeTravelAvailable })}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await app.close();
  await source.close();
}

function parse(args: string[]): { journal?: string; port?: string; 'api-keys'?: string; 'data-key-file'?: string } {
  try {
    return parseArgs({
      args,
      strict: true,
      options: { journal: { type: 'string' }, port: { type: 'string' }, 'api-keys': { type: 'string' }, 'data-key-file': { type: 'string' } },
    }).values;
  } catch (error) {
    throw new ArcError(ErrorCodes.USAGE, `${error instanceof Error ? error.message : String(error)}\n\n${inspectUsage}`);
  }
}
