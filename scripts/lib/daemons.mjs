// Process plumbing shared by the scripts that run local services for development, tests and CI
// (scripts/kafka/kafka.mjs, scripts/hpc/hpc.mjs): pid files, liveness that tells zombies apart,
// SIGTERM-then-SIGKILL, a start lock so two concurrent `start`s never launch a service twice,
// and the error type whose exit code the scripts return.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_AVAILABLE = 3;

/** An error the scripts print as one line (prefixed with their name) and exit with exitCode. */
export class CliError extends Error {
  constructor(message, exitCode = EXIT_FAILURE) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** A line on stderr prefixed with the script's name ("kafka: ...", "hpc: ..."). */
export const infoFor = (name) => (message) => process.stderr.write(`${name}: ${message}\n`);

/** A TCP port from the environment variable `name`, or fallback when it is unset or empty. */
export function portFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`${name}=${raw} is not a TCP port`, EXIT_USAGE);
  return port;
}

export function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  // A zombie (exited, not yet reaped) still answers kill(0); /proc tells it apart.
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** The pid written in `file`, or undefined when there is none (or no file). */
export function readPid(file) {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pid in `file` if that process runs and its command line holds `marker`: a pid the
 * system reused for something else is not ours. Without /proc the pid file is trusted.
 */
export function ourPid(file, marker) {
  const pid = readPid(file);
  if (pid === undefined || !isAlive(pid)) return undefined;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) return undefined;
  } catch {
    // no /proc: trust the pid file
  }
  return pid;
}

export async function waitUntilGone(pid, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}

/** SIGTERM, then SIGKILL when `name` (pid) is still running after graceMs. */
export async function terminate(info, name, pid, graceMs) {
  info(`stopping ${name} (pid ${pid})`);
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    if (err.code === 'ESRCH') return;
    throw err;
  }
  if (await waitUntilGone(pid, graceMs)) return;
  info(`${name} (pid ${pid}) still running after ${Math.round(graceMs / 1000)} s; sending SIGKILL`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
  await waitUntilGone(pid, 10_000);
}

/** The last lines of a log file (long lines cut), for error messages. */
export function logTail(file, lines = 20) {
  if (!existsSync(file)) return `(no ${file})`;
  return readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => (line.length > 400 ? `${line.slice(0, 400)} ...` : line))
    .join('\n');
}

/**
 * Runs fn holding lockFile, so that two concurrent `start`s do not both launch a service:
 * the second waits for the first, then finds its service running. A lock left by a start
 * that died is taken over.
 */
export async function withStartLock(info, lockFile, timeoutMs, fn) {
  const deadline = performance.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    const holder = readPid(lockFile);
    let ageMs;
    try {
      ageMs = Date.now() - statSync(lockFile).mtimeMs;
    } catch (err) {
      if (err.code === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    // An empty file younger than 10 s is one being written right now.
    if ((holder !== undefined && !isAlive(holder)) || (holder === undefined && ageMs > 10_000)) {
      rmSync(lockFile, { force: true });
      continue;
    }
    if (performance.now() > deadline) throw new CliError(`another start (pid ${holder ?? '?'}) still holds ${lockFile}`);
    if (!announced) info(`another start (pid ${holder ?? '?'}) is in progress; waiting for it`);
    announced = true;
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

/** Runs a script's main() and turns its result or CliError into the exit code. */
export function runMain(name, main) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      if (err instanceof CliError) {
        process.stderr.write(`${name}: ${err.message}\n`);
        process.exitCode = err.exitCode;
      } else {
        process.stderr.write(`${name}: unexpected error: ${err?.stack ?? err}\n`);
        process.exitCode = EXIT_FAILURE;
      }
    },
  );
}
