export interface ListedFile {
  /** Path relative to the listed folder. */
  readonly path: string;
  readonly sizeBytes: number;
  /** The checksum of the chosen type; '' when the backend could not give one for this file. */
  readonly hash: string;
}

/** At most this many differences are named in a verify's detail; the count covers all of them. */
const MAX_NAMED_DIFFERENCES = 20;

/**
 * Compares a source listing with its copy: every source file must be at the destination with
 * the same size and checksum, and the destination must hold nothing else (a copy folder named
 * after its key holds only that copy, so an extra file means someone else wrote there).
 */
export function compareListings(
  source: readonly ListedFile[],
  destination: readonly ListedFile[],
  hashType: string,
): { readonly ok: boolean; readonly detail: string } {
  const atDestination = new Map(destination.map((f) => [f.path, f]));
  const differences: string[] = [];
  let bytes = 0;
  for (const file of source) {
    bytes += file.sizeBytes;
    const copy = atDestination.get(file.path);
    atDestination.delete(file.path);
    if (copy === undefined) differences.push(`${file.path}: missing at the destination`);
    else if (copy.sizeBytes !== file.sizeBytes) differences.push(`${file.path}: ${copy.sizeBytes} bytes at the destination, ${file.sizeBytes} at the source`);
    else if (file.hash === '' || copy.hash === '') differences.push(`${file.path}: no ${hashType} checksum to compare`);
    else if (copy.hash !== file.hash) differences.push(`${file.path}: ${hashType} differs`);
  }
  for (const extra of atDestination.keys()) differences.push(`${extra}: at the destination only`);
  if (differences.length === 0) {
    return { ok: true, detail: `${source.length} files, ${bytes} bytes, ${hashType} checksums identical` };
  }
  const named = differences.slice().sort().slice(0, MAX_NAMED_DIFFERENCES);
  const more = differences.length > named.length ? `; and ${differences.length - named.length} more` : '';
  return { ok: false, detail: `${differences.length} difference(s): ${named.join('; ')}${more}` };
}
