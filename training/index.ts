/**
 * The federated trainer, for whatever runs it: the region (aggregation and
 * held-out accuracy), the simulated fleet and a node agent (local training).
 */
export { DIGITS_FORMAT, DatasetFormatError, parseDigitsCsv, type Dataset } from './dataset.js';
export { formatShardUri, parseShardUri, shardIndices, type DatasetShard } from './dataset-shard.js';
export { fedAvg, type WeightUpdate } from './fedavg.js';
export { PARTITION_SCHEMES, partition, trainTestSplit, type PartitionScheme } from './split.js';
export {
  defaultLocalTraining,
  evaluate,
  initialWeights,
  parameterCount,
  trainLocal,
  TRAINING_LIMITS,
  type LocalTrainingOptions,
  type LocalTrainingResult,
} from './softmax-regression.js';
export { weightsFromBytes, weightsToBytes } from './weights-codec.js';
export { runTrainingTask, type TrainingTaskRun, type TrainingTaskResult } from './training-task.js';
