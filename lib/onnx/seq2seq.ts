// OnnxSeq2Seq: translation with an exported Seq2Seq (X.encoder.onnx + X.decoder.onnx) through
// onnxruntime-node, with the options and results of the native model's translate. The sessions
// and the decoding loop live in a worker thread; this side tokenizes, batches and decodes text.
import * as path from 'node:path';

import type { Seq2SeqSpec } from '../models/seq2seq';
import type { BeamSearchResult } from '../core/native';
import { checkInt } from '../nn/parameter';
import type { SourceBatch } from '../text/batch';
import {
  beamSearchConfig,
  translate,
  type BeamOptions,
  type TranslateOptions,
  type Translation,
  type Translator,
} from '../decode/translate';
import { tokenizerFromJSON, type Tokenizer } from '../text';
import { seq2seqOnnxPaths, type OnnxSeq2SeqInfo, type Seq2SeqPart } from './seq2seq-format';
import type { BeamSearchRequest, Seq2SeqWorkerInput } from './seq2seq-worker';
import { OnnxWorker } from '../threads/protocol';

export interface OnnxSeq2SeqOptions {
  /** onnxruntime intra-op threads of each session (default: onnxruntime's choice). */
  threads?: number;
}

type Worker = OnnxWorker<OnnxSeq2SeqInfo, BeamSearchRequest, BeamSearchResult>;

export class OnnxSeq2Seq implements Translator {
  /** The encoder and decoder files. */
  readonly files: Record<Seq2SeqPart, string>;
  /** What the files hold: spec, vocabularies, rnnkit version, opset. */
  readonly model: OnnxSeq2SeqInfo;
  readonly spec: Seq2SeqSpec;
  readonly sourceTokenizer: Tokenizer;
  readonly targetTokenizer: Tokenizer;
  private readonly worker: Worker;

  private constructor(files: Record<Seq2SeqPart, string>, worker: Worker) {
    this.files = files;
    this.worker = worker;
    this.model = worker.info;
    this.spec = worker.info.spec;
    const tokenizer = (json: OnnxSeq2SeqInfo['sourceTokenizer'], side: string) => {
      if (!json) {
        throw new Error(
          `${files.decoder}: the model was exported without its ${side} vocabulary, so it ` +
            'cannot turn text into tokens; export a model that has tokenizers',
        );
      }
      return tokenizerFromJSON(json);
    };
    this.sourceTokenizer = tokenizer(worker.info.sourceTokenizer, 'source');
    this.targetTokenizer = tokenizer(worker.info.targetTokenizer, 'target');
  }

  /**
   * Loads a model written by exportSeq2SeqOnnx: `file` is the name it was exported to (X.onnx)
   * or either of its two files. Rejects with one Error naming the file at fault when a file
   * cannot be read, is not ONNX, is not that half of an rnnkit Seq2Seq, disagrees with the spec
   * in its metadata, the two were not exported together, or the model has no vocabularies.
   */
  static async load(file: string, options: OnnxSeq2SeqOptions = {}): Promise<OnnxSeq2Seq> {
    if (typeof file !== 'string' || file.length === 0) {
      throw new TypeError('OnnxSeq2Seq.load: file must be a non-empty path');
    }
    const threads =
      options.threads === undefined ? undefined : checkInt('threads', options.threads, 1, 1024);
    const files = seq2seqOnnxPaths(file);
    const input: Seq2SeqWorkerInput = { files, threads };
    const worker: Worker = await OnnxWorker.start(
      path.join(__dirname, 'seq2seq-worker.js'),
      input,
      files.decoder,
    );
    try {
      return new OnnxSeq2Seq(files, worker);
    } catch (error) {
      await worker.close('model');
      throw error;
    }
  }

  /** Translates every source (greedy, or beam search with `beam` > 1); see TranslateOptions. */
  translate(sources: readonly string[], options: TranslateOptions = {}): Promise<Translation[]> {
    return translate(this, sources, options);
  }

  /** Beam search over an already padded source batch; token-level results, as Seq2Seq's. */
  beamSearch(batch: SourceBatch, options: BeamOptions): Promise<BeamSearchResult> {
    return this.worker.call({
      source: batch.source,
      lengths: batch.sourceLengths,
      config: beamSearchConfig(this.spec, batch, options),
    });
  }

  /** Stops the worker; calls in flight reject, later ones reject at once. */
  close(): Promise<void> {
    return this.worker.close('model');
  }
}
