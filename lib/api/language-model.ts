// The LanguageModel users hold: the network of models/language-model.ts with its text-level
// methods (fit, evaluate, generate, stream, save, load, PyTorch import and export), each a call
// into the layer that owns the work (train/, decode/, checkpoint/). It sits above those layers so
// that they take a network and never import a model's methods back.
import { savePlan, type SaveOptions } from '../checkpoint/format';
import {
  loadCheckpoint,
  loadPytorch,
  saveCheckpoint,
  savePytorch,
} from '../checkpoint/language-model';
import type { ResumeState } from '../checkpoint/resume';
import type { LoadOptions } from '../checkpoint/verify';
import { native } from '../core/native';
import { checkInt } from '../core/validate';
import { complete, generate, stream } from '../decode/generate';
import type { GenerateOptions, StreamOptions } from '../decode/options';
import type { GeneratorInfo, TextGenerator } from '../decode/text-generator';
import type { Completion, StreamEnd } from '../decode/token-loop';
import { loadedAs, quantizedCopy, wantedWeights } from './quantized';
import { LanguageModelNetwork, type LanguageModelConfig } from '../models/language-model';
import type { InferenceWeights } from '../nn/quantize';
import { fit, type FitOptions, type FitResult } from '../train/fit';
import { evalBatch, evaluateTokens } from '../train/language-model';
import type { UnknownPolicy } from '../text';

export class LanguageModel extends LanguageModelNetwork implements TextGenerator {
  private lastTraining: ResumeState | null = null;

  /** Trains on a text (or token ids) in a worker thread; resolves with the loss history. */
  async fit(corpus: string | Int32Array, options: FitOptions = {}): Promise<FitResult> {
    const result = await this.reading(() => fit(this, corpus, options));
    this.lastTraining = result.resume;
    return result;
  }

  /**
   * Loss (nats per token), perplexity and bits per token over every next-token prediction of a
   * text (`tokens` of them: the text's tokens minus one), state carried through it. `unknown`:
   * text outside the vocabulary throws (`'error'`, the default) or is scored as the unknown token
   * (`'map'`), as a word model's held-out text usually needs.
   */
  evaluate(
    text: string,
    options: { seqLength?: number; unknown?: UnknownPolicy } = {},
  ): { loss: number; perplexity: number; bitsPerToken: number; tokens: number } {
    if (!this.tokenizer) throw new Error('evaluate: the model has no tokenizer');
    const ids = this.tokenizer.encode(text, { unknown: options.unknown });
    if (ids.length < 2) throw new RangeError('evaluate: the text needs at least two tokens');
    const steps = checkInt('seqLength', options.seqLength ?? Math.min(100, ids.length - 1), 1);
    // A quantized model is scored on the native steps that generate with its int8 or bf16
    // products, over the same streams.
    const { loss, count } = this.quantization
      ? {
          loss: native.lmScore(this.nativeModel(), ids, evalBatch(ids, steps)) / (ids.length - 1),
          count: ids.length - 1,
        }
      : evaluateTokens(this, ids, evalBatch(ids, steps), steps);
    return { loss, perplexity: Math.exp(loss), bitsPerToken: loss / Math.LN2, tokens: count };
  }

  get info(): GeneratorInfo {
    return { backend: 'native', vocabSize: this.spec.vocabSize, spec: { ...this.spec } };
  }

  /**
   * Frees the model's weights now, once the generations and training in flight have ended, rather
   * than at a garbage collection some time after the model is dropped (a service that loads and
   * drops models holds tens of MiB less). Any use of the model afterwards is an error.
   */
  close(): Promise<void> {
    return this.release();
  }

  /** Continues every prompt; see GenerateOptions. */
  generate(options: GenerateOptions): Promise<string[]> {
    return generate(this, options);
  }

  /** Continues every prompt as generate does, with the tokens and why each row ended. */
  complete(options: GenerateOptions): Promise<Completion[]> {
    return complete(this, options);
  }

  /** Streams the continuation of one prompt as text pieces; returns how it ended. */
  stream(options: StreamOptions): AsyncGenerator<string, StreamEnd> {
    return stream(this, options);
  }

  /**
   * A copy of the model with int8 weights (one scale per row, activations quantized per row at
   * each step) or bfloat16 weights for inference: every recurrent weight matrix and the output
   * layer's. It generates, streams, serves, evaluates and saves; it does not train.
   */
  quantize(dtype: InferenceWeights): LanguageModel {
    return quantizedCopy(
      this,
      dtype,
      () => new LanguageModel({ ...this.spec, tokenizer: this.tokenizer ?? undefined, seed: 0 }),
    );
  }

  /**
   * Saves weights, architecture and vocabulary as safetensors, atomically. After fit, the
   * optimizer state is saved too (so that training can resume) unless `weightsOnly` is set.
   * `dtype: 'float16'` stores the weights in half the space, rounded to float16, and implies
   * `weightsOnly`; they are widened back to float32 when loaded.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    const { resume, dtype } = savePlan(options, this.lastTraining);
    return saveCheckpoint(this, path, resume, dtype);
  }

  /**
   * Loads a model saved by `save` (the training state, if any, is kept for resuming), verifying
   * the file strictly (see LoadOptions). `weights: 'int8' | 'bf16'` quantizes a float32
   * checkpoint as it loads (see quantize); a quantized checkpoint loads as what it holds.
   */
  static async load(
    path: string,
    options: LoadOptions & { weights?: InferenceWeights } = {},
  ): Promise<LanguageModel> {
    const { weights, ...verify } = options;
    const wanted = wantedWeights(weights);
    const { model, resume } = await loadCheckpoint(path, LanguageModel, verify);
    model.lastTraining = resume;
    return loadedAs(path, model, wanted);
  }

  /** Builds a model from a PyTorch state dict (embedding, rnn, decoder) saved as safetensors. */
  static fromPyTorch(
    path: string,
    config: LanguageModelConfig,
    options?: LoadOptions,
  ): Promise<LanguageModel> {
    return loadPytorch(path, config, LanguageModel, options);
  }

  /** Writes the weights as a PyTorch state dict in safetensors. */
  toPyTorch(path: string): Promise<void> {
    return savePytorch(this, path);
  }

  /** The training state after fit or load, for resuming: pass as `fit(..., { resume })`. */
  get resumeState(): ResumeState | null {
    return this.lastTraining;
  }
}
