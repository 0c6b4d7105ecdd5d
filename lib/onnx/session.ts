// Opening an rnnkit .onnx file in onnxruntime-node: the bytes are read once, checked
// (readOnnxModel, readOnnxSeq2Seq) and handed to the session, and every failure becomes one Error
// naming the file.
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';

import { readOnnxModel, type OnnxModelInfo } from './format';

export interface OnnxSession {
  info: OnnxModelInfo;
  session: ort.InferenceSession;
}

/**
 * Reads `file`, checks it with `read` (which throws one Error naming the file), then opens an
 * onnxruntime session on it with `threads` intra-op threads (undefined: onnxruntime's default).
 * The session runs its nodes one after another: a recurrent graph is a chain, so inter-op
 * parallelism would only add threads. Idle intra-op threads sleep instead of spinning: the session
 * shares the machine with the event loop it serves (and often with other work), and spinning
 * threads steal those cores; with two busy neighbours on two cores, a config-M step ran 2-3x
 * faster without spinning, at batch 1, 64 and 256 alike.
 */
export async function openSession<Info>(
  file: string,
  threads: number | undefined,
  read: (bytes: Uint8Array, file: string) => Info,
): Promise<{ info: Info; session: ort.InferenceSession }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  const info = read(bytes, file);
  try {
    const session = await ort.InferenceSession.create(bytes, {
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    return { info, session };
  } catch (error) {
    throw new Error(`${file}: onnxruntime cannot load the model: ${(error as Error).message}`);
  }
}

/** Opens an rnnkit language model (`readOnnxModel` checks it); see openSession. */
export function openOnnxSession(file: string, threads?: number): Promise<OnnxSession> {
  return openSession(file, threads, readOnnxModel);
}
