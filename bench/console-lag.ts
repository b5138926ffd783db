import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { figure, percentile, round, type Figure } from './measure.js';

/**
 * Input to console: telemetry posted to a live `arcnet region` (its own process,
 * LMDB journal, HTTP API and console WebSocket, exactly as operators run it) at
 * a steady rate, each report stamped with the wall clock when it is sent; a
 * console client subtracts that stamp from its own clock on arrival. The lag
 * covers HTTP ingress, edge validation, the shard, the durable journal append
 * and the fan-out. Baseline, same run: the round trip of one message through a
 * bare `ws` echo server on the same loopback.
 */
const NODES = 2_000;
const RATE_PER_SEC = 2_000;
const SECONDS = 8;
const cli = fileURLToPath(new URL('../cli/arcnet.js', import.meta.url));

export async function consoleLagBench(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'arcnet-console-lag-'));
  const child = spawn(process.execPath, [cli, 'region', '--data', join(dir, 'data'), '--geozones', 'CAISO', '--port', '0', '--status-every', '1h'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  try {
    const origin = await listening(child.stderr);
    const lags: number[] = [];
    let received = 0;
    const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/telemetry?types=telemetry`);
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string; node?: { timestamp: string } };
      if (message.type !== 'telemetry' || message.node === undefined) return;
      received++;
      lags.push(Date.now() - Date.parse(message.node.timestamp));
    });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));

    const pool = new Pool(origin, { connections: 32, pipelining: 1 });
    let sent = 0;
    let refused = 0;
    const post = async (i: number): Promise<void> => {
      const body = JSON.stringify({
        'node-id': `lag-${i % NODES}`,
        geozone: 'CAISO',
        geohash: '9q9hvu',
        'energy-source': 'grid',
        'battery-level': 0.8,
        'gpu-utilization': 0.4,
        'models-loaded': ['llama-3-70b'],
        timestamp: new Date(Date.now()).toISOString(),
      });
      const response = await pool.request({ method: 'POST', path: '/v1/telemetry', headers: { 'content-type': 'application/json' }, body });
      await response.body.dump();
      if (response.statusCode !== 202) refused++;
    };
    // Paced: each 10 ms, the reports due by then.
    const pending: Promise<void>[] = [];
    const start = Date.now();
    const total = RATE_PER_SEC * SECONDS;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * RATE_PER_SEC));
      while (sent < due) pending.push(post(sent++));
      await sleep(10);
    }
    await Promise.all(pending);
    const achievedPerSec = total / ((Date.now() - start) / 1000);
    await sleep(500);
    socket.terminate();
    await pool.close();

    const echo = await wsEchoRoundTrips(2_000);
    // The first second warms the JIT and fills the fleet; measure the rest.
    const steady = lags.slice(Math.min(lags.length - 1, RATE_PER_SEC));
    return [
      figure({
        bench: 'console_lag',
        metric: 'p99_input_to_console_ms',
        unit: 'ms',
        value: percentile(steady, 99),
        baseline: { what: 'raw ws echo round trip p99 on the same loopback', value: percentile(echo, 99) },
        goal: 'p99 well under the seed 15 s; aim < 1 s',
        extra: {
          p50Ms: round(percentile(steady, 50)),
          baselineP50Ms: round(percentile(echo, 50), 3),
          offeredPerSec: RATE_PER_SEC,
          achievedPerSec: round(achievedPerSec),
          sent,
          refused,
          received,
          nodes: NODES,
        },
      }),
    ];
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

function listening(stderr: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`region did not listen:\n${text}`)), 60_000);
    stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /"address":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(text);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
}

async function wsEchoRoundTrips(count: number): Promise<number[]> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (ws) => ws.on('message', (data: Buffer) => ws.send(data)));
  const { port } = server.address() as { port: number };
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((resolve) => client.once('open', resolve));
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const sentAt = performance.now();
    await new Promise<void>((resolve) => {
      client.once('message', () => resolve());
      client.send(JSON.stringify({ i }));
    });
    samples.push(performance.now() - sentAt);
  }
  client.terminate();
  await new Promise((resolve) => server.close(resolve));
  return samples;
}
