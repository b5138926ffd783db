import { parseArgs } from 'node:util';
import { destination, pino } from 'pino';
import { installGuard } from '../adapters/http/guard-hook.js';
import { baseServer } from '../adapters/http/http-api.js';
import { limits } from '../actors/wire.js';
import { loadDataKey } from '../adapters/lmdb/data-key.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { registerInspector } from '../inspector/register.js';
import { journalInspectorSource } from '../inspector/source.js';
import { regionSecurity } from '../app/region-security.js';

export const inspectUsage = `arcnet inspect --journal DIR [--port 8090] [--api-keys FILE] [--data-key-file FILE]
    Serve the state-machine inspector over a data folder at http://127.0.0.1:PORT/inspector: the region
    as the folder holds it (recovered read-only, nothing runs), its actors and their journal history, and
    time travel to any offset or time. With --api-keys (or ARCNET_API_KEYS) the page's API needs a key with the read permission
    (give it in the page, or as /inspector#key=...); without, it is open (loopback only).
    Encrypted stores: --data-key-file FILE or ARCNET_DATA_KEY (hex).
`;

/** A key's requests per second on the inspector (burst twice that): the page pages through lists while scrolling. */
const INSPECTOR_RATE_PER_SEC = 200;

/** `arcnet inspect ...`: prints one JSON line with the page's URL, then serves until SIGTERM/SIGINT. */
export async function runInspectCommand(args: string[]): Promise<void> {
  const values = parse(args);
  const dir = values.journal;
  if (dir === undefined || dir === '') throw new ArcError(ErrorCodes.USAGE, `missing --journal\n\n${inspectUsage}`);
  const port = values.port === undefined ? 8090 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ArcError(ErrorCodes.USAGE, `--port must be 0..65535, got '${values.port}'`);
  const dataKey = loadDataKey({ ...(values['data-key-file'] === undefined ? {} : { file: values['data-key-file'] }), env: process.env });
  const log = pino({ name: 'arcnet-inspect', level: process.env['LOG_LEVEL'] ?? 'info' }, destination(2));
  // The same keys as the region: a file, or ARCNET_API_KEYS; open (and logged as such) without either.
  const { guard } = regionSecurity({ apiKeysFile: values['api-keys'], rateLimitPerSec: INSPECTOR_RATE_PER_SEC }, process.env, log, (refusal, context) =>
    log.warn({ status: refusal.status, code: refusal.code, method: context.method, path: context.path, ...(context.keyId === undefined ? {} : { keyId: context.keyId }) }, 'request refused'),
  );

  const source = journalInspectorSource(dir, { dataKey });
  const app = baseServer({ bodyLimitBytes: limits.maxMessageBytes });
  registerInspector(app, { source, routes: installGuard(app, guard) });
  const address = await app.listen({ host: '127.0.0.1', port });
  process.stdout.write(`${JSON.stringify({ inspector: `${address}/inspector`, mode: source.mode, geozones: source.geozones(() => true), apiKeys: guard !== undefined, timeTravel: source.timeTravelAvailable })}\n`);

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
