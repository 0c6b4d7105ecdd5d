// The Seq2Seq users hold: the network of models/seq2seq.ts with its text-level methods (fit,
// translate, save, load), each a call into the layer that owns the work (train/, decode/,
// checkpoint/). It sits above those layers so that they take a network and never import a
// model's methods back.
import { savePlan, type SaveOptions } from '../checkpoint/format';
import { loadSeq2Seq, saveSeq2Seq } from '../checkpoint/seq2seq';
import type { ResumeState } from '../checkpoint/resume';
import type { LoadOptions } from '../checkpoint/verify';
import {
  beamSearchConfig,
  translate,
  type BeamOptions,
  type TranslateOptions,
  type Translation,
  type Translator,
} from '../decode/translate';
import { Seq2SeqNetwork } from '../models/seq2seq';
import type { InferenceWeights } from '../nn/quantize';
import type { SourceBatch } from '../text/batch';
import type { FitResult } from '../train/fit';
import type { TextPair } from '../text/pairs';
import { fitSeq2Seq, type Seq2SeqFitOptions } from '../train/seq2seq-fit';
import { loadedAs, quantizedCopy, wantedWeights } from './quantized';

export class Seq2Seq extends Seq2SeqNetwork implements Translator {
  private lastTraining: ResumeState | null = null;

  /**
   * Native beam search (beam 1: greedy, or sampling with temperature > 0) over an already padded
   * source batch; token-level results.
   */
  beamSearch(batch: SourceBatch, o: BeamOptions) {
    return this.decodeBeams(batch, beamSearchConfig(this.spec, batch, o));
  }

  /**
   * Trains on (source, target) text pairs in a worker thread; resolves with the loss history and
   * the state `save` keeps for resuming.
   */
  async fit(pairs: readonly TextPair[], options: Seq2SeqFitOptions = {}): Promise<FitResult> {
    const result = await fitSeq2Seq(this, pairs, options);
    this.lastTraining = result.resume;
    return result;
  }

  /** The training state after fit or load, for resuming: pass as `fit(..., { resume })`. */
  get resumeState(): ResumeState | null {
    return this.lastTraining;
  }

  /** Translates every source (greedy, or beam search with `beam` > 1); see TranslateOptions. */
  translate(sources: readonly string[], options: TranslateOptions = {}): Promise<Translation[]> {
    return translate(this, sources, options);
  }

  /**
   * A copy of the model with int8 weights (one scale per row; the decoder's search quantizes its
   * activations per row at each step) or bfloat16 weights for inference: the recurrent layers'
   * weight matrices (encoder and decoder), the attention's and the output layer's. It translates
   * and saves; it does not train.
   */
  quantize(dtype: InferenceWeights): Seq2Seq {
    return quantizedCopy(
      this,
      dtype,
      () =>
        new Seq2Seq({
          ...this.spec,
          sourceTokenizer: this.sourceTokenizer ?? undefined,
          targetTokenizer: this.targetTokenizer ?? undefined,
          seed: 0,
        }),
    );
  }

  /**
   * Saves weights, architecture and vocabularies as safetensors, atomically. After fit, the
   * optimizer state is saved too (so that training can resume) unless `weightsOnly` is set.
   * `dtype: 'float16'` stores the weights in half the space, rounded to float16, and implies
   * `weightsOnly`; they are widened back to float32 when loaded.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    const { resume, dtype } = savePlan(options, this.lastTraining);
    return saveSeq2Seq(this, path, resume, dtype);
  }

  /**
   * Loads a model saved by `save`, checking every tensor (see LoadOptions; the training state is
   * kept). `weights: 'int8' | 'bf16'` quantizes a float32 checkpoint as it loads (see quantize); a
   * quantized checkpoint loads as what it holds.
   */
  static async load(
    path: string,
    options: LoadOptions & { weights?: InferenceWeights } = {},
  ): Promise<Seq2Seq> {
    const { weights, ...verify } = options;
    const wanted = wantedWeights(weights);
    const { model, resume } = await loadSeq2Seq(path, Seq2Seq, verify);
    model.lastTraining = resume;
    return loadedAs(path, model, wanted);
  }
}
