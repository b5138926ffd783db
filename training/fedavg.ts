/**
 * FedAvg (McMahan et al., 2017): the mean of the participants' weight vectors,
 * each weighted by how many samples it trained on. Summed in float64 in node
 * id order (not arrival order), so the same updates give the same float32
 * bytes whichever order they came in, live or replayed.
 */
export interface WeightUpdate {
  readonly nodeId: string;
  readonly sampleCount: number;
  readonly weights: ArrayLike<number>;
}

export function fedAvg(updates: readonly WeightUpdate[]): Float32Array {
  const first = updates[0];
  if (first === undefined) throw new RangeError('FedAvg of no updates');
  const sorted = [...updates].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const length = first.weights.length;
  let total = 0;
  const ids = new Set<string>();
  for (const u of sorted) {
    if (ids.has(u.nodeId)) throw new RangeError(`two updates from node ${u.nodeId}`);
    ids.add(u.nodeId);
    if (u.weights.length !== length) throw new RangeError(`node ${u.nodeId} sent ${u.weights.length} weights; the others sent ${length}`);
    if (!Number.isInteger(u.sampleCount) || u.sampleCount < 1) throw new RangeError(`node ${u.nodeId} trained on ${u.sampleCount} samples`);
    total += u.sampleCount;
  }
  const sum = new Float64Array(length);
  for (const u of sorted) {
    for (let i = 0; i < length; i++) sum[i] = (sum[i] as number) + u.sampleCount * (u.weights[i] as number);
  }
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (sum[i] as number) / total;
  return out;
}
