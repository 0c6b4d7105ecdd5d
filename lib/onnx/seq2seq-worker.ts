// OnnxSeq2Seq's worker thread: it owns the encoder and decoder sessions (onnxruntime's run()
// blocks the thread that calls it) and runs whole beam searches, one call after another.
import { workerData } from 'node:worker_threads';

import type { BeamSearchConfig, BeamSearchResult } from '../core/native';
import { OnnxSeq2SeqLoop } from './seq2seq-loop';
import { readOnnxSeq2Seq, sha256, type OnnxSeq2SeqInfo, type Seq2SeqPart } from './seq2seq-format';
import { openSession } from './session';
import { serveCalls } from '../threads/protocol';

export interface Seq2SeqWorkerInput {
  files: Record<Seq2SeqPart, string>;
  /** onnxruntime intra-op threads per session; undefined: onnxruntime's default. */
  threads: number | undefined;
}

export interface BeamSearchRequest {
  /** A padded source batch [S, B], time-major, and each row's length. */
  source: Int32Array;
  lengths: Int32Array;
  config: BeamSearchConfig;
}

void serveCalls<OnnxSeq2SeqInfo, BeamSearchRequest, BeamSearchResult>(async () => {
  const { files, threads } = workerData as Seq2SeqWorkerInput;
  const encoder = await openSession(files.encoder, threads, (bytes, file) => ({
    ...readOnnxSeq2Seq(bytes, file, 'encoder'),
    hash: sha256(bytes),
  }));
  const decoder = await openSession(files.decoder, threads, (bytes, file) =>
    readOnnxSeq2Seq(bytes, file, 'decoder'),
  );
  if (decoder.info.encoderHash !== encoder.info.hash) {
    throw new Error(
      `${files.decoder}: it was not exported together with ${files.encoder} (the encoder it ` +
        'records has other bytes); export the model again to write both files',
    );
  }
  const loop = new OnnxSeq2SeqLoop(encoder.session, decoder.session, decoder.info.spec);
  return {
    info: decoder.info,
    async handle(r) {
      const result = await loop.beamSearch(r.source, r.lengths, r.config);
      const transfer = [result.tokens, result.lengths, result.scores, result.align].map(
        (a) => a.buffer as ArrayBuffer,
      );
      return { result, transfer };
    },
  };
});
