import type { Dataset } from './dataset.js';
import { PARTITION_SCHEMES, partition, trainTestSplit, type PartitionScheme } from './split.js';

/**
 * Which slice of a data set one participant trains on, as a URI the region
 * hands out and any trainer can resolve alone:
 * `builtin:digits#part=2&of=8&scheme=iid&seed=7&test=0.2`.
 * The held-out split (`test`, seeded by `seed`) is taken first and never
 * trained on; the rest is partitioned into `of` parts and this is part `part`.
 */
export interface DatasetShard {
  readonly datasetUri: string;
  /** 0-based. */
  readonly part: number;
  readonly of: number;
  readonly scheme: PartitionScheme;
  readonly seed: number;
  /** Fraction of the samples held out for accuracy. */
  readonly testFraction: number;
}

export function formatShardUri(shard: DatasetShard): string {
  return `${shard.datasetUri}#part=${shard.part}&of=${shard.of}&scheme=${shard.scheme}&seed=${shard.seed}&test=${shard.testFraction}`;
}

export function parseShardUri(uri: string): DatasetShard {
  const hash = uri.lastIndexOf('#');
  if (hash <= 0) throw new RangeError(`'${uri}' names no part of a data set (expected '...#part=&of=&scheme=&seed=&test=')`);
  const params = new URLSearchParams(uri.slice(hash + 1));
  const int = (name: string, min: number): number => {
    const value = Number(params.get(name));
    if (!Number.isInteger(value) || value < min) throw new RangeError(`'${uri}': ${name} must be an integer >= ${min}`);
    return value;
  };
  const scheme = params.get('scheme');
  if (!PARTITION_SCHEMES.includes(scheme as PartitionScheme)) throw new RangeError(`'${uri}': scheme must be one of ${PARTITION_SCHEMES.join(', ')}`);
  const testFraction = Number(params.get('test'));
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`'${uri}': test must be a fraction in (0, 1)`);
  const shard: DatasetShard = { datasetUri: uri.slice(0, hash), part: int('part', 0), of: int('of', 1), scheme: scheme as PartitionScheme, seed: int('seed', 0), testFraction };
  if (shard.part >= shard.of) throw new RangeError(`'${uri}': part must be below of`);
  return shard;
}

/** The sample indices of this shard's part, and of the held-out split every part shares. */
export function shardIndices(dataset: Dataset, shard: DatasetShard): { train: number[]; test: number[] } {
  const split = trainTestSplit(dataset.count, shard.testFraction, shard.seed);
  const parts = partition(split.train, dataset.labels, shard.of, shard.scheme, shard.seed);
  return { train: parts[shard.part] ?? [], test: split.test };
}
