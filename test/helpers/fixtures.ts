import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeReport } from '../../machines/node.js';

/** A fresh temporary folder, removed when the returned cleanup runs. */
export function tempDir(prefix = 'arcnet-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function report(overrides: Partial<NodeReport> = {}): NodeReport {
  return {
    geohash: '9q9hvu',
    geozone: 'CAISO',
    energySource: 'grid',
    batteryLevel: 0.9,
    gpuUtilization: 0.4,
    gpuCount: 4,
    modelsLoaded: ['llama-3-70b'],
    reportedAtMs: 1_000,
    draining: false,
    ...overrides,
  };
}
