import { execFile } from 'node:child_process';

/**
 * GPU figures from `nvidia-smi` (the NVIDIA driver's tool), when the host has it:
 * `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits` prints
 * one line per GPU with its utilisation in percent.
 */
export interface GpuReading {
  readonly gpuCount: number;
  /** Mean utilisation over the GPUs, 0..1. */
  readonly utilization: number;
}

/** The query the agent runs (exported for the README and tests). */
export const NVIDIA_SMI_ARGS = ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits'] as const;

/** Parses the query's output; undefined when it names no GPU or a line is not a percentage. */
export function parseNvidiaSmiCsv(output: string): GpuReading | undefined {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 0) return undefined;
  const percents = lines.map((line) => Number(line.replace(/%$/, '').trim()));
  if (percents.some((p) => !Number.isFinite(p) || p < 0 || p > 100)) return undefined;
  const mean = percents.reduce((sum, p) => sum + p, 0) / percents.length;
  return { gpuCount: percents.length, utilization: Math.round(mean * 10) / 1000 };
}

/**
 * Runs nvidia-smi. Resolves `undefined` when the host has no such command
 * (ENOENT: no NVIDIA driver here), and rejects for any other failure (the
 * driver is there but did not answer), which the caller reports.
 */
export function readNvidiaSmi(command: string, timeoutMs: number): Promise<GpuReading | undefined> {
  return new Promise((resolve, reject) => {
    execFile(command, [...NVIDIA_SMI_ARGS], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (error, stdout) => {
      if (error !== null) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return resolve(undefined);
        return reject(new Error(`${command} failed: ${error.message}`));
      }
      const reading = parseNvidiaSmiCsv(stdout);
      if (reading === undefined) return reject(new Error(`${command} printed no GPU utilisation: ${stdout.slice(0, 200)}`));
      resolve(reading);
    });
  });
}
