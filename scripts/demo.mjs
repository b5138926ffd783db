#!/usr/bin/env node
// `npm start`: the whole system on the embedded journal, as two processes (the region and the
// central orchestrator are two roles, each a process of its own, as they run in production; one
// dying does not take the other's journal with it). The region runs its fleet (port 8080); the
// orchestrator (port 8090) reads the region's summaries over HTTP into its global view and runs a
// seeded mix of training jobs through both paths: federated ones go to the geozone it ranks best,
// HPC ones are staged and run on Slurm and rclone when `npm run hpc:start` runs them, else on the
// local data mover and batch queue. Ctrl-C stops both; each prints its final line with a state hash.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli/arcnet.js', import.meta.url));
const regionPort = process.env.ARCNET_DEMO_REGION_PORT ?? '8080';
const centralPort = process.env.ARCNET_DEMO_CENTRAL_PORT ?? '8090';

const processes = [
  ['region', ['region', '--data', 'data/demo', '--geozones', 'CAISO,ERCOT,PJM', '--sim-nodes', '1000', '--rate', '200', '--port', regionPort]],
  [
    'central',
    [
      'central', '--data', 'data/demo-central', '--port', centralPort, '--hpc', process.env.ARCNET_DEMO_HPC ?? 'auto',
      // Six training jobs a minute; the region's summaries every 10 s (the global view expects that period).
      '--sim-jobs', '6', '--summaries-from', `http://127.0.0.1:${regionPort}`, '--summary-every', '10s',
      // The local mover copies at 256 KiB/s so its progress shows on the console (rclone copies at its own pace).
      '--transfer-rate', '262144',
    ],
  ],
].map(([name, args]) => {
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit' });
  return { name, child, exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))) };
});

let stopping = false;
function stopAll() {
  if (stopping) return;
  stopping = true;
  // Each stops cleanly on SIGTERM (a terminal's Ctrl-C reaches them too; a second signal is harmless).
  for (const { child } of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}
process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);
console.error(`demo: region on http://127.0.0.1:${regionPort}/inspector, central orchestrator on http://127.0.0.1:${centralPort}/inspector (GET /v1/jobs, /v1/global); Ctrl-C stops both`);

// One process ending (an error, or a port in use) ends the demo: the other is stopped too.
const codes = await Promise.all(
  processes.map(async ({ name, exited }) => {
    const code = await exited;
    if (!stopping) console.error(`demo: ${name} exited with ${code}; stopping the other process`);
    stopAll();
    return code;
  }),
);
process.exitCode = codes.find((c) => c !== 0) ?? 0;
