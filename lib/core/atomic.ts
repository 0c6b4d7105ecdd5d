import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';

async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory as a file; NTFS makes the rename durable on its own.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `target` so that readers see either the old file or the complete new one,
 * never a partial file, even if the process dies or the disk fills mid-write: the bytes go to a
 * temporary file in the same directory (rename is atomic only within one file system), which is
 * flushed to disk and then renamed over `target`. On failure the temporary file is removed, the
 * previous `target` is left as it was, and the Error names `target` and the cause (`cause` holds
 * the original error with its `code`, e.g. ENOSPC, EACCES, ENOENT).
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  let tempExists = false;
  try {
    const handle = await open(temp, 'wx');
    tempExists = true;
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    tempExists = false;
    // The rename itself lives in the directory; flushing it makes the new file survive a crash.
    await syncDirectory(dir);
  } catch (error) {
    if (tempExists) await unlink(temp).catch(() => undefined);
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot write ${target}: ${reason}`, { cause: error });
  }
}
