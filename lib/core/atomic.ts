import { randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import * as path from 'node:path';

/** Temporary files this process is writing now, which no cleanup may touch. */
const writing = new Set<string>();

/** Whether process `pid` exists on this machine (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temporary file written before this naming, by a version that did not record its pid. */
const LEGACY_STALE_MS = 10 * 60_000;

/**
 * Removes the temporary files of earlier saves of `target` that a crash or a kill left behind:
 * those whose writer (the pid in the name) is no longer running, and nameless-writer ones (the
 * older `.name.<hex>.tmp`) untouched for ten minutes. Saves in progress, here or in another
 * running process, are left alone.
 */
async function removeStaleTemporaries(dir: string, base: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const prefix = `.${base}.`;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const id = name.slice(prefix.length, -'.tmp'.length);
    const file = path.join(dir, name);
    const withPid = /^(\d+)-[0-9a-f]{12}$/.exec(id);
    if (withPid) {
      const pid = Number(withPid[1]);
      if (writing.has(file) || (pid !== process.pid && alive(pid))) continue;
    } else if (/^[0-9a-f]{12}$/.test(id)) {
      const age = await stat(file).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age < LEGACY_STALE_MS) continue;
    } else {
      continue;
    }
    await unlink(file).catch(() => undefined);
  }
}

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
 * temporary file in the same directory (rename is atomic only within one file system),
 * `.<name>.<pid>-<random>.tmp`, which is flushed to disk and then renamed over `target`. On
 * failure the temporary file is removed, the previous `target` is left as it was, and the Error
 * names `target` and the cause (`cause` holds the original error with its `code`, e.g. ENOSPC,
 * EACCES, ENOENT). A temporary file that a killed process left behind is removed by the next
 * save of the same target.
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  const base = path.basename(target);
  const temp = path.join(dir, `.${base}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  let tempExists = false;
  writing.add(temp);
  try {
    await removeStaleTemporaries(dir, base);
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
  } finally {
    writing.delete(temp);
  }
}
