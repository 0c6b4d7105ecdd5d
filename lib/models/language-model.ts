import { Dropout } from '../nn/dropout';
import { Embedding } from '../nn/embedding';
import { Linear } from '../nn/linear';
import { SoftmaxCrossEntropy } from '../nn/loss';
import { checkBool, checkChoice, checkInt, checkNumber } from '../core/validate';
import { Module, Parameter } from '../nn/parameter';
import {
  CELLS,
  NONLINEARITIES,
  RecurrentStack,
  type CellType,
  type RecurrentState,
} from '../nn/recurrent';
import {
  joinedScales,
  PackedOnce,
  type Quantizable,
  type Quantization,
  type QuantizedMatrix,
} from '../nn/quantize';
import { native, type LmWeights, type NativePacked, type Precision } from '../core/native';
import { Random } from '../core/random';
import type { Tokenizer } from '../text';
import { IGNORE_INDEX } from '../text/batch';

export interface LanguageModelConfig {
  /** Vocabulary size; taken from `tokenizer` when that is given. */
  vocabSize?: number;
  /** Embedding width (default: hiddenSize). */
  embeddingSize?: number;
  cell?: CellType;
  hiddenSize?: number;
  numLayers?: number;
  dropout?: number;
  residual?: boolean;
  /** Vanilla RNN only: 'tanh' (default) or 'relu'. */
  nonlinearity?: 'tanh' | 'relu';
  /** Share the embedding matrix with the output layer (needs embeddingSize === hiddenSize). */
  tieWeights?: boolean;
  /** Seed for initialisation and dropout. */
  seed?: number;
  /** The tokenizer that maps text to ids; needed by text-level methods (fit, generate, ...). */
  tokenizer?: Tokenizer;
}

/** The resolved architecture, as stored in checkpoints and ONNX metadata. */
export interface LanguageModelSpec {
  vocabSize: number;
  embeddingSize: number;
  cell: CellType;
  hiddenSize: number;
  numLayers: number;
  dropout: number;
  residual: boolean;
  nonlinearity: 'tanh' | 'relu';
  tieWeights: boolean;
}

export interface ForwardResult {
  /** [T, B, vocabSize] unnormalised log-probabilities. */
  logits: Float32Array;
  state: RecurrentState;
}

/** Token ids as [T][B] arrays, or a flat time-major Int32Array with its shape. */
export type TokenBatch = number[][] | { ids: Int32Array; steps: number; batch: number };

/**
 * Embedding -> recurrent stack -> linear decoder over the vocabulary: a character- or word-level
 * language model's network. Its methods work on token ids; training, decoding and checkpoints are
 * functions of the layers above that take a network, and the LanguageModel users hold
 * (lib/api/language-model.ts) adds them as methods.
 */
export class LanguageModelNetwork extends Module implements Quantizable {
  readonly spec: LanguageModelSpec;
  readonly embedding: Embedding;
  readonly rnn: RecurrentStack;
  readonly decoder: Linear;
  /** Dropout on the embedded input and on the last layer's output (Zaremba et al.'s placement). */
  private readonly inputDropout: Dropout;
  private readonly outputDropout: Dropout;
  tokenizer: Tokenizer | null;
  /** int8 or bfloat16 weights for inference (nn/quantize.ts); null: float32, as trained. */
  quantization: Quantization | null = null;
  private readonly packed = new PackedOnce<NativePacked>();
  private readonly loss = new SoftmaxCrossEntropy({ ignoreIndex: IGNORE_INDEX });

  constructor(config: LanguageModelConfig) {
    super();
    const vocabSize = config.tokenizer?.size ?? config.vocabSize;
    if (config.tokenizer && config.vocabSize !== undefined && config.vocabSize !== vocabSize) {
      throw new RangeError(
        `vocabSize ${config.vocabSize} disagrees with the tokenizer's size ${config.tokenizer.size}`,
      );
    }
    const hiddenSize = checkInt('hiddenSize', config.hiddenSize ?? 256, 1);
    // Only an absent field takes its default: null or a value of another type is an error.
    const cell = checkChoice('cell', config.cell === undefined ? 'lstm' : config.cell, CELLS);
    this.spec = {
      vocabSize: checkInt('vocabSize', vocabSize, 1),
      embeddingSize: checkInt('embeddingSize', config.embeddingSize ?? hiddenSize, 1),
      cell,
      hiddenSize,
      numLayers: checkInt(
        'numLayers',
        config.numLayers === undefined ? 1 : config.numLayers,
        1,
        64,
      ),
      dropout: checkNumber('dropout', config.dropout === undefined ? 0 : config.dropout, 0, 0.99),
      residual: checkBool('residual', config.residual === undefined ? false : config.residual),
      nonlinearity: checkChoice(
        'nonlinearity',
        config.nonlinearity === undefined ? 'tanh' : config.nonlinearity,
        NONLINEARITIES,
      ),
      tieWeights: checkBool(
        'tieWeights',
        config.tieWeights === undefined ? false : config.tieWeights,
      ),
    };
    const s = this.spec;
    if (s.tieWeights && s.embeddingSize !== s.hiddenSize) {
      throw new RangeError(
        `tieWeights needs embeddingSize === hiddenSize, got ${s.embeddingSize} and ${s.hiddenSize}`,
      );
    }
    const rng = new Random(config.seed ?? Date.now());
    this.tokenizer = config.tokenizer ?? null;
    this.embedding = new Embedding(s.vocabSize, s.embeddingSize, rng);
    this.rnn = new RecurrentStack(cell, {
      inputSize: s.embeddingSize,
      hiddenSize: s.hiddenSize,
      numLayers: s.numLayers,
      dropout: s.dropout,
      residual: s.residual,
      nonlinearity: cell === 'rnn' ? s.nonlinearity : undefined,
      seed: Math.floor(rng.uniform() * 2 ** 32),
    });
    this.inputDropout = new Dropout(s.dropout, Math.floor(rng.uniform() * 2 ** 32));
    this.outputDropout = new Dropout(s.dropout, Math.floor(rng.uniform() * 2 ** 32));
    this.decoder = new Linear(s.hiddenSize, s.vocabSize, {
      rng,
      weight: s.tieWeights ? this.embedding.weight : undefined,
    });
  }

  /** Parameters with their checkpoint (PyTorch state-dict) prefixes; tied weights appear once. */
  namedParameters(): [string, Parameter][] {
    const named: [string, Parameter][] = [
      ['embedding.weight', this.embedding.weight],
      ['rnn.weights', this.rnn.weights],
    ];
    if (!this.spec.tieWeights) named.push(['decoder.weight', this.decoder.weight]);
    if (this.decoder.bias) named.push(['decoder.bias', this.decoder.bias]);
    return named;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  describe(): string {
    return `LanguageModel(${this.embedding.describe()}, ${this.rnn.describe()}, ${this.decoder.describe()})`;
  }

  /** A multi-line summary: layers, shapes and parameter counts. */
  summary(): string {
    const rows: [string, string, number][] = [
      ['embedding', this.embedding.describe(), this.embedding.numParameters()],
      ['rnn', this.rnn.describe(), this.rnn.numParameters()],
      [
        'decoder',
        this.decoder.describe() + (this.spec.tieWeights ? ' (weight tied to embedding)' : ''),
        this.spec.tieWeights ? (this.decoder.bias?.size ?? 0) : this.decoder.numParameters(),
      ],
    ];
    const width = Math.max(...rows.map(([, d]) => d.length));
    const lines = rows.map(
      ([name, d, n]) => `  ${name.padEnd(10)} ${d.padEnd(width)} ${n.toLocaleString('en-US')}`,
    );
    return [
      'LanguageModel',
      ...lines,
      `  total parameters: ${this.numParameters().toLocaleString('en-US')}`,
    ].join('\n');
  }

  /** A zero recurrent state for `batch` rows. */
  zeroState(batch: number): RecurrentState {
    return this.rnn.zeroState(batch);
  }

  /**
   * Runs token ids [T][B] (time-major) through the model and returns logits [T, B, V] (a fresh
   * array) and the final state (fresh copies), starting from `state` or zeros.
   */
  forward(tokens: TokenBatch, state?: RecurrentState): ForwardResult {
    const { ids, steps, batch } = this.toIds(tokens);
    const out = this.run(ids, steps, batch, state, false);
    return {
      logits: out.logits.slice(),
      state: copyState(out.state),
    };
  }

  /**
   * One training forward and backward over inputs/targets [T*B] (time-major): returns the mean
   * cross-entropy and leaves the gradients (added to) in every parameter's grad. The final state
   * (a view reused by the next call) is returned for truncated backpropagation through time.
   * `precision` is that of the recurrent stack's and the decoder's products, forward and backward
   * (default 'float32'); the embedding, the loss and every gradient stay float32.
   */
  lossAndGradients(
    inputs: Int32Array,
    targets: Int32Array,
    steps: number,
    batch: number,
    state?: RecurrentState,
    precision: Precision = 'float32',
  ): { loss: number; count: number; state: RecurrentState } {
    const { logits, state: final } = this.run(inputs, steps, batch, state, true, precision);
    const { loss, count } = this.loss.forward(logits, targets, this.spec.vocabSize);
    const dlogits = this.loss.backward();
    const dout = this.decoder.backward(dlogits);
    if (!dout) throw new Error('decoder gave no input gradient');
    const { dx } = this.rnn.backward(this.outputDropout.backward(dout));
    this.embedding.backward(this.inputDropout.backward(dx));
    return { loss, count, state: final };
  }

  /** Sum of the cross-entropy over counted positions (no gradients), and the final state. */
  lossSum(
    inputs: Int32Array,
    targets: Int32Array,
    steps: number,
    batch: number,
    state?: RecurrentState,
  ): { sum: number; count: number; state: RecurrentState } {
    const { logits, state: final } = this.run(inputs, steps, batch, state, false);
    const { sum, count } = this.loss.forward(logits, targets, this.spec.vocabSize);
    return { sum, count, state: final };
  }

  private run(
    ids: Int32Array,
    steps: number,
    batch: number,
    state: RecurrentState | undefined,
    training: boolean,
    precision: Precision = 'float32',
  ): { logits: Float32Array; state: RecurrentState } {
    const x = this.inputDropout.forward(this.embedding.forward(ids), training);
    const { output, state: final } = this.rnn.forward(x, {
      steps,
      batch,
      state,
      training,
      precision,
    });
    return {
      logits: this.decoder.forward(this.outputDropout.forward(output, training), precision),
      state: final,
    };
  }

  private toIds(tokens: TokenBatch): { ids: Int32Array; steps: number; batch: number } {
    if (Array.isArray(tokens)) {
      const steps = tokens.length;
      const batch = steps > 0 ? tokens[0].length : 0;
      if (steps === 0 || batch === 0) {
        throw new RangeError('tokens must be a non-empty [T][B] array of token ids');
      }
      const ids = new Int32Array(steps * batch);
      tokens.forEach((row, t) => {
        if (!Array.isArray(row) || row.length !== batch) {
          throw new RangeError(
            `tokens[${t}] must hold ${batch} ids (one per batch row), got ${Array.isArray(row) ? row.length : typeof row}`,
          );
        }
        row.forEach((id, b) => (ids[t * batch + b] = id));
      });
      return { ids, steps, batch };
    }
    const { ids, steps, batch } = tokens;
    checkInt('steps', steps, 1);
    checkInt('batch', batch, 1);
    if (!(ids instanceof Int32Array) || ids.length !== steps * batch) {
      throw new RangeError(
        `ids must be an Int32Array of steps*batch = ${steps * batch} token ids, got ${ids instanceof Int32Array ? `length ${ids.length}` : typeof ids}`,
      );
    }
    return { ids, steps, batch };
  }

  /**
   * Where the dropout mask streams stand (input, output, between layers): a training checkpoint
   * saves them so that a resumed run draws the masks the uninterrupted run would have.
   */
  get dropoutSeeds(): number[] {
    return [this.inputDropout.stream, this.outputDropout.stream, this.rnn.dropoutSeed];
  }

  set dropoutSeeds(seeds: number[]) {
    if (!Array.isArray(seeds) || seeds.length !== 3 || !seeds.every(Number.isSafeInteger)) {
      throw new RangeError('dropoutSeeds must be 3 integers (input, output, recurrent stack)');
    }
    [this.inputDropout.stream, this.outputDropout.stream, this.rnn.dropoutSeed] = seeds;
  }

  /**
   * The matrices a quantized model holds in int8 or bfloat16, by checkpoint name: every layer's
   * weight_ih and weight_hh, and the decoder's weight (the embedding's too when tied), as
   * [rows, cols] views of the parameters. Embedding lookups and biases stay float32.
   */
  quantizedMatrices(): QuantizedMatrix[] {
    return [
      ...this.rnn.quantizedMatrices('rnn'),
      { name: 'decoder.weight', rows: this.spec.vocabSize, data: this.decoder.weight.data },
    ];
  }

  protected override releaseNative(): void {
    this.packed.release();
  }

  /**
   * The model as native generation and scoring take it: a quantized model's weights packed once
   * (PackedOnce), a float32 model's weights as they are.
   */
  nativeModel(): LmWeights | NativePacked {
    const packed = this.packed.get(
      this.quantization,
      () => new native.PackedLm(this.nativeWeights()),
    );
    return packed ?? this.nativeWeights();
  }

  /** Weights as the native generation loop takes them. */
  nativeWeights() {
    const s = this.spec;
    const q = this.quantization;
    return {
      cell: this.rnn.cellName,
      V: s.vocabSize,
      E: s.embeddingSize,
      H: s.hiddenSize,
      L: s.numLayers,
      residual: s.residual,
      embedding: this.embedding.weight.data,
      stack: this.rnn.weights.data,
      decoderWeight: this.decoder.weight.data,
      decoderBias: this.decoder.bias?.data ?? new Float32Array(s.vocabSize),
      weights: q?.dtype ?? ('float32' as const),
      ...(q?.dtype === 'int8' && {
        stackScales: joinedScales(q, this.rnn.quantizedMatrices('rnn')),
        decoderScales: q.scales['decoder.weight'],
      }),
    };
  }
}

export function copyState(state: RecurrentState): RecurrentState {
  return state.c ? { h: state.h.slice(), c: state.c.slice() } : { h: state.h.slice() };
}
