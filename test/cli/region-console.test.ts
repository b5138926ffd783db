import test from 'ava';
import WebSocket from 'ws';
import { consoleMessageSchema } from '../../adapters/console/console-messages.js';
import { tempDir } from '../helpers/fixtures.js';
import { createKeyWithCli, startLiveRegion } from '../helpers/live-region.js';

interface Received {
  readonly messages: Record<string, unknown>[];
  readonly socket: WebSocket;
}

/** Opens a console connection; resolves once it is open, or with the HTTP status that refused it. */
function connect(url: string, headers: Record<string, string> = {}): Promise<Received | { refused: number }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    const messages: Record<string, unknown>[] = [];
    socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
    socket.once('open', () => resolve({ messages, socket }));
    socket.once('unexpected-response', (_request, response) => resolve({ refused: response.statusCode ?? 0 }));
    socket.once('error', (error) => reject(error));
  });
}

const opened = (r: Received | { refused: number }): Received => {
  if ('refused' in r) throw new Error(`refused with ${r.refused}`);
  return r;
};

const until = async (what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> => {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

test('arcnet region --port serves the console feed: keys, geozone scope, type filters, tickets, refusals as system events, lag', async (t) => {
  const { dir, cleanup } = tempDir();
  const keys = `${dir}/keys.json`;
  const caiso = createKeyWithCli(keys, 'viewer', 'CAISO');
  const everything = createKeyWithCli(keys, 'viewer', '*');
  const region = await startLiveRegion(['--data', `${dir}/data`, '--geozones', 'CAISO,ERCOT', '--sim-nodes', '60', '--rate', '40', '--api-keys', keys]);
  const ws = region.origin.replace(/^http/, 'ws');
  const sockets: WebSocket[] = [];
  try {
    // Refused before the upgrade: no key, a wrong key.
    t.deepEqual(await connect(`${ws}/telemetry`), { refused: 401 });
    t.deepEqual(await connect(`${ws}/telemetry`, { authorization: 'Bearer arc_wrongwrongwrongwrongwrongwrongwrongwrongwrong' }), { refused: 401 });

    const all = opened(await connect(`${ws}/telemetry`, { authorization: `Bearer ${everything}` }));
    const scoped = opened(await connect(`${ws}/telemetry?geozones=CAISO,ERCOT`, { authorization: `Bearer ${caiso}` }));
    const onlyTelemetry = opened(await connect(`${ws}/telemetry?types=telemetry`, { authorization: `Bearer ${everything}` }));
    sockets.push(all.socket, scoped.socket, onlyTelemetry.socket);

    // A refusal now reaches the all-geozone console as a system event (and never names the key).
    t.is((await fetch(`${region.origin}/v1/nodes`, { headers: { authorization: 'Bearer arc_notakeynotakeynotakeynotakeynotakeynotake' } })).status, 401);

    const of = (r: Received, type: string): Record<string, unknown>[] => r.messages.filter((m) => m['type'] === type);
    await until('telemetry and inference from both geozones', () => {
      const zones = new Set(of(all, 'telemetry').map((m) => m['geozone']));
      return zones.has('CAISO') && zones.has('ERCOT') && of(all, 'inference').length > 5 && of(all, 'system').length > 0;
    });
    await until('the scoped client to get CAISO traffic', () => of(scoped, 'telemetry').length > 0 && of(scoped, 'inference').length > 0);

    for (const m of [...all.messages, ...scoped.messages].filter((m) => m['type'] !== 'subscribed')) {
      const parsed = consoleMessageSchema.safeParse(m);
      t.true(parsed.success, `a ${String(m['type'])} message matches the console schema: ${JSON.stringify(m).slice(0, 300)}`);
    }
    t.true(
      scoped.messages.filter((m) => m['type'] !== 'subscribed').every((m) => m['geozone'] === 'CAISO'),
      'a CAISO key never receives ERCOT, even when it asks for it',
    );
    t.true(onlyTelemetry.messages.filter((m) => m['type'] !== 'subscribed').every((m) => m['type'] === 'telemetry'));
    const refusal = of(all, 'system').find((m) => m['message'] === 'request refused: no valid API key');
    t.truthy(refusal, 'the refusal is a system event');
    t.false(JSON.stringify(all.messages).includes('arc_notakey'), 'no key in any message');
    t.false(of(scoped, 'system').some((m) => m['message'] === 'request refused: no valid API key'), 'region-wide events stay with all-geozone keys');
    const inference = of(all, 'inference')[0] as { source: [number, number] };
    t.true(Math.abs(inference.source[0]) > 60 && Math.abs(inference.source[1]) > 20, 'source is a real [lng, lat] in North America');

    // Browsers: a ticket from the HTTP API, used once.
    const ticketReply = await fetch(`${region.origin}/v1/console/tickets`, { method: 'POST', headers: { authorization: `Bearer ${caiso}` } });
    t.is(ticketReply.status, 201);
    const { ticket } = (await ticketReply.json()) as { ticket: string };
    const browser = opened(await connect(`${ws}/telemetry?ticket=${encodeURIComponent(ticket)}`));
    sockets.push(browser.socket);
    t.deepEqual(await connect(`${ws}/telemetry?ticket=${encodeURIComponent(ticket)}`), { refused: 401 }, 'a ticket works once');
    await until('the ticket client to receive CAISO messages', () => browser.messages.some((m) => m['type'] === 'telemetry' || m['type'] === 'inference'));
    t.true(browser.messages.filter((m) => m['type'] !== 'subscribed').every((m) => m['geozone'] === 'CAISO'), 'a ticket carries its key scope');

    // Metrics count the console clients.
    const metrics = await (await fetch(`${region.origin}/metrics`, { headers: { authorization: `Bearer ${everything}` } })).text();
    t.regex(metrics, /^arcnet_console_clients [4-9]$/m);

    // Input to console: the node's report time to arrival here (informational; speed is measured in bench).
    const lags = of(all, 'telemetry')
      .map((m) => Date.now() - Date.parse((m['node'] as { timestamp: string }).timestamp))
      .sort((a, b) => a - b);
    t.log(`telemetry messages ${lags.length}; report-to-console lag (upper bound) p50 ${lags[lags.length >> 1]} ms, max ${lags[lags.length - 1]} ms`);
  } finally {
    for (const socket of sockets) socket.terminate();
    const line = await region.stop();
    t.is(typeof line['stateHash'], 'string');
    cleanup();
  }
});
