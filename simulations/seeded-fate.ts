import { Prng } from '../runtime/random.js';

/**
 * A PRNG for one named thing (a transfer key and attempt, a batch job name), derived from the run's
 * seed and the name alone: the fate of one job does not depend on how many others were drawn
 * before it, so adding a job to a scenario leaves every other job's fate as it was.
 */
export function prngFor(seed: number, name: string): Prng {
  // FNV-1a over the UTF-16 code units, mixed with the seed.
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return new Prng(hash);
}

/** Picks one outcome by weight: `weights` in order, the remainder of 1 goes to `otherwise`. */
export function pickByWeight<T extends string>(prng: Prng, weights: readonly (readonly [T, number])[], otherwise: T): T {
  let draw = prng.next();
  for (const [outcome, weight] of weights) {
    if (draw < weight) return outcome;
    draw -= weight;
  }
  return otherwise;
}
