#!/usr/bin/env node
// A local batch queue and data mover for development, tests and CI: a one-node Slurm cluster
// (with its own MUNGE daemon) and rclone's remote-control daemon, all on 127.0.0.1.
//
//   node scripts/hpc/hpc.mjs start    install what is missing (apt), start (or find) munged, slurmctld,
//                                     slurmd and `rclone rcd`; wait until the node is idle and rc answers;
//                                     print the connection facts as one JSON line on stdout
//   node scripts/hpc/hpc.mjs stop     stop only the daemons this script started (SIGTERM, then SIGKILL)
//   node scripts/hpc/hpc.mjs status   print the connection facts and which daemons run (exit 0), or
//                                     "stopped" (exit 1)
//
// Nothing in /etc is written: Slurm reads <repo>/.hpc/slurm/slurm.conf through SLURM_CONF (Slurm 22.05
// accepts that for its daemons and its commands alike), and MUNGE runs with its own key and socket
// under .hpc/munge, which slurm.conf names (AuthInfo=socket=...). A system munged or Slurm, if any,
// is left alone. Everything lives in <repo>/.hpc:
//   connection.json        the facts printed by start (clients read it: adapters' hpcServicesFromEnvironment)
//   munge/                 munge.key (made once, 0600), munge.sock, munged.pid, munged.log, munged.seed
//   slurm/                 slurm.conf, state/ (StateSaveLocation), spool/, slurmctld.log/.pid, slurmd.log/.pid
//   rclone/                rc-credentials.json (user and password made once, 0600), rclone.conf, rcd.log, rcd.pid
//   start.lock             held while a start is in progress
// Environment: HPC_RCLONE_PORT (5572), HPC_SLURMCTLD_PORT (6917), HPC_SLURMD_PORT (6918),
// HPC_START_TIMEOUT_MS (90000).
// Exit codes: 0 ok, 1 failure, 2 usage, 3 the packages are missing and cannot be installed here.
/* global fetch, AbortSignal */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CliError,
  EXIT_FAILURE,
  EXIT_NOT_AVAILABLE,
  EXIT_USAGE,
  infoFor,
  logTail,
  ourPid,
  portFromEnv,
  runMain,
  terminate as terminatePid,
  withStartLock as withLockFile,
} from '../lib/daemons.mjs';


const HOST = '127.0.0.1';
const SCRIPT_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(SCRIPT_DIR, '..', '..');
const HPC_DIR = join(REPO_ROOT, '.hpc');
const CONNECTION_FILE = join(HPC_DIR, 'connection.json');
const START_LOCK = join(HPC_DIR, 'start.lock');
const MUNGE_DIR = join(HPC_DIR, 'munge');
const SLURM_DIR = join(HPC_DIR, 'slurm');
const RCLONE_DIR = join(HPC_DIR, 'rclone');
const FILES = {
  mungeKey: join(MUNGE_DIR, 'munge.key'),
  mungeSocket: join(MUNGE_DIR, 'munge.sock'),
  mungePid: join(MUNGE_DIR, 'munged.pid'),
  mungeLog: join(MUNGE_DIR, 'munged.log'),
  mungeSeed: join(MUNGE_DIR, 'munged.seed'),
  slurmConf: join(SLURM_DIR, 'slurm.conf'),
  slurmState: join(SLURM_DIR, 'state'),
  slurmSpool: join(SLURM_DIR, 'spool'),
  slurmctldLog: join(SLURM_DIR, 'slurmctld.log'),
  slurmctldPid: join(SLURM_DIR, 'slurmctld.pid'),
  slurmdLog: join(SLURM_DIR, 'slurmd.log'),
  slurmdPid: join(SLURM_DIR, 'slurmd.pid'),
  rcCredentials: join(RCLONE_DIR, 'rc-credentials.json'),
  rcloneConf: join(RCLONE_DIR, 'rclone.conf'),
  rcdLog: join(RCLONE_DIR, 'rcd.log'),
  rcdPid: join(RCLONE_DIR, 'rcd.pid'),
};
const PARTITION = 'arcnet';
const CLUSTER = 'arcnet-local';
const RC_USER = 'arcnet';
/** Finished jobs stay visible to scontrol this long (no accounting database here, so sacct does not work). */
const MIN_JOB_AGE_S = 600;
/**
 * rclone (1.60) forgets finished rc jobs after this. Every rc call is a job there, status polls
 * included, so a long expiry makes job/list (which find-by-key scans) grow with the polling; a
 * forgotten finished transfer is started again by its caller and skips every file already there.
 */
const RC_JOB_EXPIRE = '10m';
/** The node registers at most this much memory, so a job's default request always fits. */
const NODE_MEMORY_MB_MAX = 2000;
/** Binaries each package provides; one missing means the package is installed (again). */
const REQUIRED_BINARIES = { munge: ['munged'], 'slurm-wlm': ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'sinfo'], rclone: ['rclone'] };
const NODE_READY_STATES = new Set(['idle', 'mix', 'mixed', 'alloc', 'allocated', 'comp', 'completing']);

const info = infoFor('hpc');

function config() {
  const rcPort = portFromEnv('HPC_RCLONE_PORT', 5572);
  const slurmctldPort = portFromEnv('HPC_SLURMCTLD_PORT', 6917);
  const slurmdPort = portFromEnv('HPC_SLURMD_PORT', 6918);
  if (new Set([rcPort, slurmctldPort, slurmdPort]).size !== 3) throw new CliError('HPC_RCLONE_PORT, HPC_SLURMCTLD_PORT and HPC_SLURMD_PORT must differ', EXIT_USAGE);
  const timeoutRaw = Number(process.env.HPC_START_TIMEOUT_MS ?? '');
  const startTimeoutMs = Number.isFinite(timeoutRaw) && timeoutRaw > 0 ? timeoutRaw : 90_000;
  return { rcPort, slurmctldPort, slurmdPort, startTimeoutMs, rcUrl: `http://${HOST}:${rcPort}/`, node: hostname().split('.')[0] };
}

// ---------------------------------------------------------------- packages

function onPath(binary) {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '';
}

function missingPackages() {
  return Object.entries(REQUIRED_BINARIES)
    .filter(([, binaries]) => binaries.some((b) => !onPath(b)))
    .map(([pkg]) => pkg);
}

/** apt-get update, then install what is missing; a CliError with exit 3 when apt is not usable here. */
function ensurePackages() {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (!onPath('apt-get')) throw new CliError(`missing ${missing.join(', ')} and there is no apt-get here: install them with your package manager`, EXIT_NOT_AVAILABLE);
  if (process.getuid?.() !== 0) throw new CliError(`missing ${missing.join(', ')}: run as root once (apt-get install ${missing.join(' ')}), or install them yourself`, EXIT_NOT_AVAILABLE);
  info(`installing ${missing.join(', ')} with apt-get (once) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-q', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
    if (r.error || r.status !== 0) {
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
      throw new CliError(`apt-get ${args[0]} failed (exit ${r.status ?? r.error?.message}):\n${out}`, EXIT_NOT_AVAILABLE);
    }
  }
  const still = missingPackages();
  if (still.length > 0) throw new CliError(`apt-get installed ${missing.join(', ')} but ${still.join(', ')} still lack their programs`, EXIT_NOT_AVAILABLE);
}

// ---------------------------------------------------------------- configuration files

function ensureMungeKey() {
  if (existsSync(FILES.mungeKey)) return;
  // MUNGE accepts any key of 32 bytes or more; 1024 random bytes, as mungekey makes.
  writeFileSync(FILES.mungeKey, randomBytes(1024), { mode: 0o600 });
}

/** The rc API's user and password, made once; the password reaches rclone through its environment, never its argv. */
function ensureRcCredentials() {
  if (existsSync(FILES.rcCredentials)) {
    const saved = JSON.parse(readFileSync(FILES.rcCredentials, 'utf8'));
    if (typeof saved.user === 'string' && typeof saved.password === 'string') return saved;
  }
  const credentials = { user: RC_USER, password: randomBytes(24).toString('base64url') };
  writeFileSync(FILES.rcCredentials, `${JSON.stringify(credentials)}\n`, { mode: 0o600 });
  return credentials;
}

function slurmConf(cfg) {
  const cpus = availableParallelism();
  const memoryMb = Math.min(NODE_MEMORY_MB_MAX, Math.floor((totalmem() / 1024 / 1024) * 0.5));
  return [
    '# Written by scripts/hpc/hpc.mjs start: a one-node cluster on 127.0.0.1 for development and tests.',
    `ClusterName=${CLUSTER}`,
    `SlurmctldHost=${cfg.node}(${HOST})`,
    `SlurmctldPort=${cfg.slurmctldPort}`,
    `SlurmdPort=${cfg.slurmdPort}`,
    // slurmctld and slurmd bind to their configured address (127.0.0.1), not to every interface.
    'CommunicationParameters=NoCtldInAddrAny,NoInAddrAny',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${FILES.mungeSocket}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'JobAcctGatherType=jobacct_gather/none',
    'MpiDefault=none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core',
    `StateSaveLocation=${FILES.slurmState}`,
    `SlurmdSpoolDir=${FILES.slurmSpool}`,
    `SlurmctldPidFile=${FILES.slurmctldPid}.daemon`,
    `SlurmdPidFile=${FILES.slurmdPid}.daemon`,
    `SlurmctldLogFile=${FILES.slurmctldLog}`,
    `SlurmdLogFile=${FILES.slurmdLog}`,
    'ReturnToService=2',
    `MinJobAge=${MIN_JOB_AGE_S}`,
    'SchedulerType=sched/backfill',
    `NodeName=${cfg.node} NodeAddr=${HOST} NodeHostname=${cfg.node} CPUs=${cpus} RealMemory=${memoryMb} State=UNKNOWN`,
    `PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP`,
    '',
  ].join('\n');
}

/** Writes slurm.conf; true when its content changed (running daemons then need a restart to read it). */
function writeSlurmConf(cfg) {
  const text = slurmConf(cfg);
  const before = existsSync(FILES.slurmConf) ? readFileSync(FILES.slurmConf, 'utf8') : '';
  if (before === text) return false;
  writeFileSync(FILES.slurmConf, text);
  return true;
}

// ---------------------------------------------------------------- processes

/** The daemons, in start order; each knows its pid file and what its command line must hold to be ours. */
const DAEMONS = {
  munged: { pidFile: FILES.mungePid, marker: FILES.mungeSocket },
  slurmctld: { pidFile: FILES.slurmctldPid, marker: 'slurmctld' },
  slurmd: { pidFile: FILES.slurmdPid, marker: 'slurmd' },
  rcd: { pidFile: FILES.rcdPid, marker: FILES.rcloneConf },
};

function runningDaemons() {
  return Object.fromEntries(Object.entries(DAEMONS).map(([name, d]) => [name, ourPid(d.pidFile, d.marker)]));
}

function terminate(name, pid, graceMs = 15_000) {
  return terminatePid(info, name, pid, graceMs);
}

/** Spawns a foreground daemon detached from this script, its output into logFile; records its pid. */
function spawnDaemon(name, command, args, { env, logFile, pidFile, cwd }) {
  const logFd = openSync(logFile, 'a');
  let child;
  try {
    child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  if (child.pid === undefined) throw new CliError(`could not start ${name} (${command})`);
  child.unref();
  writeFileSync(pidFile, `${child.pid}\n`);
  info(`${name} started (pid ${child.pid}, log ${logFile})`);
  return child.pid;
}

const slurmEnv = () => ({ ...process.env, SLURM_CONF: FILES.slurmConf });

async function startMunged() {
  const running = ourPid(FILES.mungePid, FILES.mungeSocket);
  if (running !== undefined) return running;
  ensureMungeKey();
  // munged forks into the background itself and writes its pid file.
  const r = spawnSync('munged', ['--force', `--socket=${FILES.mungeSocket}`, `--key-file=${FILES.mungeKey}`, `--pid-file=${FILES.mungePid}`,
    `--log-file=${FILES.mungeLog}`, `--seed-file=${FILES.mungeSeed}`], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new CliError(`munged did not start (exit ${r.status ?? r.error?.message}): ${`${r.stdout}${r.stderr}`.trim()}\n${logTail(FILES.mungeLog)}`);
  for (let i = 0; i < 50; i++) {
    const pid = ourPid(FILES.mungePid, FILES.mungeSocket);
    if (pid !== undefined && existsSync(FILES.mungeSocket)) {
      info(`munged started (pid ${pid}, socket ${FILES.mungeSocket})`);
      return pid;
    }
    await sleep(100);
  }
  throw new CliError(`munged wrote no pid file or socket. ${logTail(FILES.mungeLog)}`);
}

function sinfoNodeState() {
  const r = spawnSync('sinfo', ['-h', '-N', '-p', PARTITION, '-o', '%T'], { encoding: 'utf8', env: slurmEnv(), timeout: 10_000 });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.trim().toLowerCase().replace(/[*~#!%$@^-]+$/, '');
}

function rcCall(cfg, credentials, path, body = {}) {
  const auth = Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64');
  return fetch(new URL(path, cfg.rcUrl), {
    method: 'POST',
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
}

async function rcAnswers(cfg, credentials) {
  try {
    const res = await rcCall(cfg, credentials, 'rc/noopauth');
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

async function waitFor(what, timeoutMs, check, onTimeout) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new CliError(`${what} not ready within ${Math.round(timeoutMs / 1000)} s. ${onTimeout()}`);
}

function connectionFacts(cfg) {
  return {
    rcUrl: cfg.rcUrl,
    rcCredentialsFile: FILES.rcCredentials,
    slurmConf: FILES.slurmConf,
    partition: PARTITION,
    node: cfg.node,
    hpcDir: HPC_DIR,
  };
}

// ---------------------------------------------------------------- commands

function withStartLock(timeoutMs, fn) {
  return withLockFile(info, START_LOCK, timeoutMs, fn);
}

async function start() {
  const cfg = config();
  for (const dir of [HPC_DIR, MUNGE_DIR, SLURM_DIR, FILES.slurmState, FILES.slurmSpool, RCLONE_DIR]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A cold start includes apt-get: give the lock holder that long plus the start timeout.
  await withStartLock(cfg.startTimeoutMs + 600_000, () => startLocked(cfg));
}

async function startLocked(cfg) {
  const before = runningDaemons();
  ensurePackages();
  const credentials = ensureRcCredentials();
  await startMunged();

  const confChanged = writeSlurmConf(cfg);
  for (const name of ['slurmd', 'slurmctld']) {
    const pid = ourPid(DAEMONS[name].pidFile, DAEMONS[name].marker);
    if (pid !== undefined && confChanged) await terminate(name, pid); // it would keep the old configuration
  }
  if (ourPid(FILES.slurmctldPid, 'slurmctld') === undefined) {
    spawnDaemon('slurmctld', 'slurmctld', ['-D'], { env: slurmEnv(), logFile: `${FILES.slurmctldLog}.out`, pidFile: FILES.slurmctldPid, cwd: SLURM_DIR });
  }
  if (ourPid(FILES.slurmdPid, 'slurmd') === undefined) {
    spawnDaemon('slurmd', 'slurmd', ['-D', '-N', cfg.node], { env: slurmEnv(), logFile: `${FILES.slurmdLog}.out`, pidFile: FILES.slurmdPid, cwd: SLURM_DIR });
  }

  if (ourPid(FILES.rcdPid, FILES.rcloneConf) === undefined) {
    writeFileSync(FILES.rcloneConf, '', { flag: 'a' });
    spawnDaemon('rclone rcd', 'rclone', ['rcd', '--rc-addr', `${HOST}:${cfg.rcPort}`, '--rc-job-expire-duration', RC_JOB_EXPIRE,
      '--config', FILES.rcloneConf, '--log-file', FILES.rcdLog, '--log-level', 'INFO'], {
      env: { ...process.env, RCLONE_RC_USER: credentials.user, RCLONE_RC_PASS: credentials.password },
      logFile: `${FILES.rcdLog}.out`,
      pidFile: FILES.rcdPid,
      cwd: RCLONE_DIR,
    });
  }

  const t0 = performance.now();
  await waitFor('the Slurm node', cfg.startTimeoutMs, () => {
    for (const name of ['slurmctld', 'slurmd']) {
      if (ourPid(DAEMONS[name].pidFile, DAEMONS[name].marker) === undefined) {
        throw new CliError(`${name} exited during startup:\n${logTail(name === 'slurmd' ? FILES.slurmdLog : FILES.slurmctldLog)}`);
      }
    }
    return NODE_READY_STATES.has(sinfoNodeState() ?? '');
  }, () => `sinfo says '${sinfoNodeState() ?? '(no answer)'}'. ${logTail(FILES.slurmctldLog, 10)}\n${logTail(FILES.slurmdLog, 10)}`);
  await waitFor('rclone rcd', cfg.startTimeoutMs, async () => {
    if (ourPid(FILES.rcdPid, FILES.rcloneConf) === undefined) throw new CliError(`rclone rcd exited during startup:\n${logTail(FILES.rcdLog)}\n${logTail(`${FILES.rcdLog}.out`)}`);
    return rcAnswers(cfg, credentials);
  }, () => logTail(FILES.rcdLog));
  const after = runningDaemons();
  const kept = Object.keys(after).filter((name) => after[name] !== undefined && after[name] === before[name]);
  if (kept.length === Object.keys(after).length) info(`already running (pids ${JSON.stringify(after)})`);
  info(`ready after ${((performance.now() - t0) / 1000).toFixed(1)} s: Slurm node ${cfg.node} (partition ${PARTITION}), rclone rc at ${cfg.rcUrl}`);

  const facts = connectionFacts(cfg);
  writeFileSync(`${CONNECTION_FILE}.tmp`, `${JSON.stringify(facts)}\n`);
  renameSync(`${CONNECTION_FILE}.tmp`, CONNECTION_FILE);
  process.stdout.write(`${JSON.stringify(facts)}\n`);
}

async function stop() {
  const running = runningDaemons();
  // Reverse start order: the data mover and the node before the controller, MUNGE last.
  for (const name of ['rcd', 'slurmd', 'slurmctld', 'munged']) {
    const pid = running[name];
    if (pid !== undefined) await terminate(name, pid);
    rmSync(DAEMONS[name].pidFile, { force: true });
  }
  if (Object.values(running).every((pid) => pid === undefined)) info('nothing of ours was running');
  else info('stopped');
}

async function status() {
  const cfg = config();
  const running = runningDaemons();
  if (Object.values(running).every((pid) => pid === undefined)) {
    process.stdout.write('stopped\n');
    return EXIT_FAILURE;
  }
  const nodeState = sinfoNodeState() ?? null;
  const credentials = existsSync(FILES.rcCredentials) ? JSON.parse(readFileSync(FILES.rcCredentials, 'utf8')) : undefined;
  const rcReady = credentials !== undefined && (await rcAnswers(cfg, credentials));
  process.stdout.write(`${JSON.stringify({ ...connectionFacts(cfg), pids: running, nodeState, rcReady })}\n`);
  return Object.values(running).every((pid) => pid !== undefined) && rcReady && NODE_READY_STATES.has(nodeState ?? '') ? 0 : EXIT_FAILURE;
}

const commands = { start, stop, status };

async function main() {
  const name = process.argv[2];
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    process.stderr.write('usage: node scripts/hpc/hpc.mjs start|stop|status\n');
    return EXIT_USAGE;
  }
  return (await command()) ?? 0;
}

runMain('hpc', main);
