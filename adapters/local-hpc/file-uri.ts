import { fileURLToPath } from 'node:url';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/** A file:// URI (or a plain absolute path) as a path; anything else is refused with a coded error. */
export function localPath(uri: string): string {
  if (uri.startsWith('file://')) return fileURLToPath(uri);
  if (uri.startsWith('/')) return uri;
  throw new ArcError(ErrorCodes.VALIDATION, `'${uri}' is not a file:// URI: the local data mover and queue read and write local files only (use the rclone or Globus mover for remote data)`);
}
