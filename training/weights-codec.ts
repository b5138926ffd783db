/**
 * Weights as bytes: float32 little-endian, whatever the host's byte order, so a
 * vector hashes to the same SHA-256 everywhere (the journal records that hash).
 */
export function weightsToBytes(weights: Float32Array): Uint8Array {
  const bytes = new Uint8Array(weights.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < weights.length; i++) view.setFloat32(i * 4, weights[i] as number, true);
  return bytes;
}

export function weightsFromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.length % 4 !== 0) throw new RangeError(`weights are float32: ${bytes.length} bytes is not a multiple of 4`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) {
    const value = view.getFloat32(i * 4, true);
    if (!Number.isFinite(value)) throw new RangeError(`weight ${i} is not a finite number`);
    out[i] = value;
  }
  return out;
}
