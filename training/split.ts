import { Prng } from '../runtime/random.js';

/**
 * Seeded splits of a data set's sample indices: the held-out test split, and
 * the training samples partitioned across participants, evenly (IID) or with
 * label skew (non-IID). Every function returns sorted index lists, so the same
 * seed gives the same partition on every machine.
 */

export const PARTITION_SCHEMES = ['iid', 'label-skew'] as const;
export type PartitionScheme = (typeof PARTITION_SCHEMES)[number];

/** Fisher-Yates with the project's seeded PRNG. */
function shuffled(indices: readonly number[], seed: number): number[] {
  const out = [...indices];
  const prng = new Prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    const t = out[i] as number;
    out[i] = out[j] as number;
    out[j] = t;
  }
  return out;
}

const ascending = (a: number, b: number): number => a - b;

/** `testFraction` of the samples (rounded down, at least one) held out for accuracy; the rest train. */
export function trainTestSplit(count: number, testFraction: number, seed: number): { train: number[]; test: number[] } {
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError('testFraction must be in (0, 1)');
  const order = shuffled(Array.from({ length: count }, (_, i) => i), seed);
  const testCount = Math.max(1, Math.floor(count * testFraction));
  return { test: order.slice(0, testCount).sort(ascending), train: order.slice(testCount).sort(ascending) };
}

/**
 * Splits `indices` into `parts` partitions.
 * - `iid`: a seeded shuffle dealt round-robin, so sizes differ by at most one
 *   and every partition sees every label in about the data set's proportions.
 * - `label-skew`: the samples sorted by label (ties by index) are cut into
 *   2 x parts contiguous shards and each partition gets two seeded-random shards
 *   (the split of McMahan et al., 2017), so most partitions see about two labels.
 */
export function partition(indices: readonly number[], labels: Uint8Array, parts: number, scheme: PartitionScheme, seed: number): number[][] {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError('parts must be a positive integer');
  const out: number[][] = Array.from({ length: parts }, () => []);
  if (scheme === 'iid') {
    shuffled(indices, seed).forEach((index, i) => (out[i % parts] as number[]).push(index));
  } else {
    const byLabel = [...indices].sort((a, b) => (labels[a] as number) - (labels[b] as number) || a - b);
    const shardCount = 2 * parts;
    const shardOrder = shuffled(Array.from({ length: shardCount }, (_, i) => i), seed);
    shardOrder.forEach((shard, i) => {
      const from = Math.floor((shard * byLabel.length) / shardCount);
      const to = Math.floor(((shard + 1) * byLabel.length) / shardCount);
      (out[Math.floor(i / 2)] as number[]).push(...byLabel.slice(from, to));
    });
  }
  return out.map((list) => list.sort(ascending));
}
