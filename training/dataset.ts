/**
 * A labelled data set in memory: dense features (row-major, scaled to 0..1)
 * and integer labels. Parsing is pure (text in, arrays out); reading the file
 * lives in adapters/datasets/.
 */
export interface Dataset {
  readonly count: number;
  readonly featureCount: number;
  readonly classCount: number;
  /** count x featureCount, row-major, each value in 0..1. */
  readonly features: Float64Array;
  /** count labels, each in 0..classCount-1. */
  readonly labels: Uint8Array;
}

/** The digits format: 64 pixel counts (0..16) then the digit (0..9), one sample per line. */
export const DIGITS_FORMAT = { featureCount: 64, classCount: 10, maxFeatureValue: 16 } as const;

/** Limits so a user's file cannot exhaust memory: far above the 1,797 digits. */
export const MAX_SAMPLES = 200_000;

export class DatasetFormatError extends Error {
  override readonly name = 'DatasetFormatError';
}

/**
 * Parses digits-format CSV (no header; blank lines ignored). Throws
 * DatasetFormatError naming the first bad line, so a user's file is fixed, not guessed at.
 */
export function parseDigitsCsv(text: string, maxSamples = MAX_SAMPLES): Dataset {
  const { featureCount, classCount, maxFeatureValue } = DIGITS_FORMAT;
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0) throw new DatasetFormatError('the data set is empty');
  if (lines.length > maxSamples) throw new DatasetFormatError(`the data set has ${lines.length} samples; at most ${maxSamples} are read`);
  const features = new Float64Array(lines.length * featureCount);
  const labels = new Uint8Array(lines.length);
  lines.forEach((line, row) => {
    const cells = line.trim().split(',');
    if (cells.length !== featureCount + 1) {
      throw new DatasetFormatError(`line ${row + 1} has ${cells.length} values; expected ${featureCount} features and a label`);
    }
    for (let j = 0; j <= featureCount; j++) {
      const value = Number(cells[j]);
      const max = j === featureCount ? classCount - 1 : maxFeatureValue;
      if (!Number.isInteger(value) || value < 0 || value > max) {
        throw new DatasetFormatError(`line ${row + 1}, value ${j + 1}: '${cells[j] ?? ''}' is not an integer in 0..${max}`);
      }
      if (j === featureCount) labels[row] = value;
      else features[row * featureCount + j] = value / maxFeatureValue;
    }
  });
  return { count: lines.length, featureCount, classCount, features, labels };
}
