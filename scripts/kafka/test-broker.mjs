#!/usr/bin/env node
// Around `npm test`: `up` makes sure the Kafka tests have a broker, `down` stops
// the one `up` started (and only that one).
//
//   up    KAFKA_BROKERS set: use it, start nothing. A broker already answering on
//         127.0.0.1:${KAFKA_PORT:-9092}: use it. Otherwise start the local one
//         (kafka.mjs start) and remember that we did. Without Java 17+ or Maven
//         the Kafka tests skip with a notice (under CI=true they fail instead).
//   down  stop the broker if `up` started it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const marker = join(root, '.kafka', 'started-by-tests');
const kafka = join(here, 'kafka.mjs');
const port = Number(process.env.KAFKA_PORT ?? 9092);

function answers(host, p) {
  return new Promise((resolve) => {
    const socket = connect({ host, port: p });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function up() {
  if (process.env.KAFKA_BROKERS) return;
  if (await answers('127.0.0.1', port)) return;
  const run = spawnSync(process.execPath, [kafka, 'start'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (run.status === 0) {
    mkdirSync(dirname(marker), { recursive: true });
    writeFileSync(marker, `${run.stdout.trim()}\n`);
    return;
  }
  const why = run.status === 3 ? 'Java 17+ or Maven is not available here' : 'the local broker did not start';
  console.warn(`\nNOTICE: ${why}; the Kafka tests will be skipped (under CI=true they fail). Set KAFKA_BROKERS to use another cluster.\n`);
}

function down() {
  if (!existsSync(marker)) return;
  spawnSync(process.execPath, [kafka, 'stop'], { stdio: 'inherit' });
  rmSync(marker, { force: true });
}

const command = process.argv[2];
if (command === 'up') await up();
else if (command === 'down') down();
else {
  console.error('usage: test-broker.mjs up|down');
  process.exit(2);
}
