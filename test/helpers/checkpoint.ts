// Checkpoints edited the way a damaged or hand-made file would be, for the loaders' bad-input tests.
import * as path from 'node:path';

import { readSafetensors, writeSafetensors } from '../../lib/index';
import { recordChecksums } from '../../lib/checkpoint/verify';
import type { Tensor } from '../../lib/checkpoint/safetensors';

export type CheckpointEdit = (t: Record<string, Tensor>, m: Record<string, string>) => void;

/**
 * Rewrites the checkpoint `from` as `dir/name` with `edit` applied to its tensors and metadata,
 * checksums renewed (so that the loader meets the edit itself, not a checksum mismatch).
 */
export async function editedCheckpoint(
  from: string,
  dir: string,
  name: string,
  edit: CheckpointEdit,
): Promise<string> {
  const { tensors, metadata } = await readSafetensors(from);
  edit(tensors, metadata);
  recordChecksums(tensors, metadata);
  const file = path.join(dir, name);
  await writeSafetensors(file, tensors, metadata);
  return file;
}
