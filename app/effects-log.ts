import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { RegionEffect } from '../actors/region-io.js';

/**
 * The effects log: every released dispatch and routing decision, one JSON line
 * each, fsynced before the next release. It is what requesters and nodes were
 * told, so a checker can hold the journal to it after a crash.
 */
export class EffectsLog {
  private fd: number | undefined;

  constructor(path: string) {
    this.fd = openSync(path, 'a');
  }

  write(effects: readonly RegionEffect[]): void {
    if (this.fd === undefined) return;
    let lines = '';
    for (const effect of effects) if (effect.type === 'dispatch' || effect.type === 'decision') lines += `${JSON.stringify(effect)}\n`;
    if (lines === '') return;
    writeSync(this.fd, lines);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
