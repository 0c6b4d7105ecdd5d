// The attentional encoder-decoder network (Seq2SeqNetwork). Longer than 400 lines on purpose: its
// forward and backward (the encoder both ways, the bridge, the decoder with Luong attention or the
// native input-feeding loop) share the buffers and the saved batch that backward reads, so they
// stay in one class rather than passing that state between files.
import {
  native,
  type BeamSearchConfig,
  type FeedingShape,
  type NativePacked,
} from '../core/native';
import { ATTENTION_KINDS, Attention, type AttentionKind } from '../nn/attention';
import { Embedding } from '../nn/embedding';
import { Linear } from '../nn/linear';
import { SoftmaxCrossEntropy } from '../nn/loss';
import { checkBool, checkChoice, checkInt, checkNumber } from '../core/validate';
import { Module, Parameter, reuse } from '../nn/parameter';
import {
  joinedScales,
  PackedOnce,
  type Quantizable,
  type Quantization,
  type QuantizedMatrix,
} from '../nn/quantize';
import { CELLS, RecurrentStack, type CellType, type RecurrentState } from '../nn/recurrent';
import { Random } from '../core/random';
import type { Tokenizer } from '../text';
import {
  IGNORE_INDEX,
  concatRows,
  reverseRows,
  splitRows,
  swapLeadingAxes,
  type PairBatch,
  type SourceBatch,
} from '../text/batch';

export interface Seq2SeqConfig {
  /** Tokenizers for text-level methods; the vocabulary sizes come from them when given. */
  sourceTokenizer?: Tokenizer;
  targetTokenizer?: Tokenizer;
  sourceVocab?: number;
  targetVocab?: number;
  /** Width of both embeddings (default 128). */
  embeddingSize?: number;
  cell?: CellType;
  /** Decoder hidden size (default 256). */
  hiddenSize?: number;
  /** Encoder hidden size per direction (default hiddenSize / 2 when bidirectional, else hiddenSize). */
  encoderHiddenSize?: number;
  encoderLayers?: number;
  decoderLayers?: number;
  /** Read the source both ways (default true). */
  bidirectional?: boolean;
  attention?: AttentionKind;
  /** Dropout between stacked recurrent layers (default 0). */
  dropout?: number;
  /**
   * Feed each step's attentional state into the next step's input (Luong et al. 2015, 3.3), so
   * the decoder knows what it attended to before; its step loop then runs natively (default false).
   */
  inputFeeding?: boolean;
  /** Start and end token ids of the target; default the target tokenizer's '<bos>' and '<eos>'. */
  bos?: number;
  eos?: number;
  seed?: number;
}

/** The resolved architecture, as stored in checkpoints. */
export interface Seq2SeqSpec {
  sourceVocab: number;
  targetVocab: number;
  embeddingSize: number;
  cell: CellType;
  hiddenSize: number;
  encoderHiddenSize: number;
  encoderLayers: number;
  decoderLayers: number;
  bidirectional: boolean;
  attention: AttentionKind;
  dropout: number;
  inputFeeding: boolean;
  bos: number;
  eos: number;
}

/** The encoder's view of a source batch: states [S, B, He] and the decoder's initial state. */
export interface Encoded {
  states: Float32Array;
  initial: RecurrentState;
}

function specialOrDefault(t: Tokenizer | undefined, name: string, given: number | undefined) {
  if (given !== undefined || !t) return given;
  return t.specialId(name);
}

/**
 * An attentional encoder-decoder (Luong et al. 2015): source Embedding -> recurrent encoder
 * (bidirectional: a second stack reads each row backwards within its own length, and the two
 * directions' states are concatenated) -> a linear bridge from the encoder's top-layer final
 * state to every decoder layer's initial state -> target Embedding -> recurrent decoder ->
 * Luong attention over the encoder states -> Linear over the target vocabulary. This is the
 * network; training, translation and checkpoints are functions of the layers above that take it,
 * and the Seq2Seq users hold (lib/api/seq2seq.ts) adds them as methods.
 */
export class Seq2SeqNetwork extends Module implements Quantizable {
  readonly spec: Seq2SeqSpec;
  readonly sourceEmbedding: Embedding;
  readonly encoder: RecurrentStack;
  readonly encoderReverse: RecurrentStack | null;
  readonly bridgeH: Linear;
  readonly bridgeC: Linear | null;
  readonly targetEmbedding: Embedding;
  readonly decoder: RecurrentStack;
  readonly attention: Attention;
  readonly output: Linear;
  sourceTokenizer: Tokenizer | null;
  targetTokenizer: Tokenizer | null;
  /** int8 or bfloat16 weights for inference (nn/quantize.ts); null: float32, as trained. */
  quantization: Quantization | null = null;
  private readonly packed = new PackedOnce<NativePacked>();
  private readonly loss: SoftmaxCrossEntropy;
  private trainLoss: SoftmaxCrossEntropy;
  private buffers: Record<string, Float32Array | null> = {};
  private last: PairBatch | null = null;
  private feeding: { shape: FeedingShape; x: Float32Array; encoded: Encoded } | null = null;
  private feedingSeed: number;

  constructor(config: Seq2SeqConfig) {
    super();
    const sourceVocab = config.sourceTokenizer?.size ?? config.sourceVocab;
    const targetVocab = config.targetTokenizer?.size ?? config.targetVocab;
    for (const [name, t, v] of [
      ['sourceVocab', config.sourceTokenizer, config.sourceVocab],
      ['targetVocab', config.targetTokenizer, config.targetVocab],
    ] as const) {
      if (t && v !== undefined && v !== t.size) {
        throw new RangeError(`${name} ${v} disagrees with its tokenizer's size ${t.size}`);
      }
    }
    const hiddenSize = checkInt('hiddenSize', config.hiddenSize ?? 256, 1);
    // Only an absent field takes its default: null or a value of another type is an error.
    const bidirectional = checkBool(
      'bidirectional',
      config.bidirectional === undefined ? true : config.bidirectional,
    );
    const cell = checkChoice('cell', config.cell === undefined ? 'lstm' : config.cell, CELLS);
    const tv = checkInt('targetVocab', targetVocab, 1);
    const bos = specialOrDefault(config.targetTokenizer, '<bos>', config.bos);
    const eos = specialOrDefault(config.targetTokenizer, '<eos>', config.eos);
    this.spec = {
      sourceVocab: checkInt('sourceVocab', sourceVocab, 1),
      targetVocab: tv,
      embeddingSize: checkInt('embeddingSize', config.embeddingSize ?? 128, 1),
      cell,
      hiddenSize,
      encoderHiddenSize: checkInt(
        'encoderHiddenSize',
        config.encoderHiddenSize ?? (bidirectional ? Math.max(1, hiddenSize >> 1) : hiddenSize),
        1,
      ),
      encoderLayers: checkInt('encoderLayers', config.encoderLayers ?? 1, 1, 64),
      decoderLayers: checkInt('decoderLayers', config.decoderLayers ?? 1, 1, 64),
      bidirectional,
      attention: checkChoice(
        'attention',
        config.attention === undefined ? 'general' : config.attention,
        ATTENTION_KINDS,
      ),
      dropout: checkNumber('dropout', config.dropout === undefined ? 0 : config.dropout, 0, 0.99),
      inputFeeding: checkBool(
        'inputFeeding',
        config.inputFeeding === undefined ? false : config.inputFeeding,
      ),
      bos: checkInt('bos', bos, 0, tv - 1),
      eos: checkInt('eos', eos, 0, tv - 1),
    };
    const s = this.spec;
    const rng = new Random(config.seed ?? Date.now());
    const seed = () => Math.floor(rng.uniform() * 2 ** 32);
    const encoder = () =>
      new RecurrentStack(cell, {
        inputSize: s.embeddingSize,
        hiddenSize: s.encoderHiddenSize,
        numLayers: s.encoderLayers,
        dropout: s.dropout,
        seed: seed(),
      });
    this.sourceTokenizer = config.sourceTokenizer ?? null;
    this.targetTokenizer = config.targetTokenizer ?? null;
    this.sourceEmbedding = new Embedding(s.sourceVocab, s.embeddingSize, rng);
    this.encoder = encoder();
    this.encoderReverse = bidirectional ? encoder() : null;
    const bridgeOut = s.decoderLayers * s.hiddenSize;
    this.bridgeH = new Linear(this.encoderSize, bridgeOut, { rng });
    this.bridgeC = cell === 'lstm' ? new Linear(this.encoderSize, bridgeOut, { rng }) : null;
    this.targetEmbedding = new Embedding(s.targetVocab, s.embeddingSize, rng);
    this.decoder = new RecurrentStack(cell, {
      inputSize: s.embeddingSize + (s.inputFeeding ? s.hiddenSize : 0),
      hiddenSize: s.hiddenSize,
      numLayers: s.decoderLayers,
      dropout: s.dropout,
      seed: seed(),
    });
    this.attention = new Attention({
      kind: s.attention,
      querySize: s.hiddenSize,
      keySize: this.encoderSize,
      rng,
    });
    this.output = new Linear(s.hiddenSize, s.targetVocab, { rng });
    this.feedingSeed = seed();
    this.loss = new SoftmaxCrossEntropy({ ignoreIndex: IGNORE_INDEX });
    this.trainLoss = this.loss;
  }

  /** Size of an encoder state: both directions together. */
  get encoderSize(): number {
    return this.spec.encoderHiddenSize * (this.spec.bidirectional ? 2 : 1);
  }

  /** The layers under their checkpoint prefixes, in a fixed order (absent ones left out). */
  modules(): [string, Module][] {
    const all: [string, Module | null][] = [
      ['source_embedding', this.sourceEmbedding],
      ['encoder', this.encoder],
      ['encoder_reverse', this.encoderReverse],
      ['bridge_h', this.bridgeH],
      ['bridge_c', this.bridgeC],
      ['target_embedding', this.targetEmbedding],
      ['decoder', this.decoder],
      ['attention', this.attention],
      ['output', this.output],
    ];
    return all.filter((m): m is [string, Module] => m[1] !== null);
  }

  /** Every parameter as `module.parameter`, in a fixed order (worker threads share them so). */
  namedParameters(): [string, Parameter][] {
    return this.modules().flatMap(([name, m]) =>
      m.parameters().map((p): [string, Parameter] => [`${name}.${p.name}`, p]),
    );
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  describe(): string {
    return (
      `Seq2Seq(${this.sourceEmbedding.describe()}, encoder ` +
      `${this.spec.bidirectional ? 'bidirectional ' : ''}${this.encoder.describe()}, ` +
      `${this.targetEmbedding.describe()}, decoder ${this.decoder.describe()}, ` +
      `${this.attention.describe()}, ${this.output.describe()})`
    );
  }

  /** A multi-line summary: layers, shapes and parameter counts. */
  summary(): string {
    const modules = this.modules();
    const width = Math.max(...modules.map(([, m]) => m.describe().length));
    return [
      'Seq2Seq',
      ...modules.map(
        ([name, m]) =>
          `  ${name.padEnd(17)} ${m.describe().padEnd(width)} ${m.numParameters().toLocaleString('en-US')}`,
      ),
      `  total parameters: ${this.numParameters().toLocaleString('en-US')}`,
    ].join('\n');
  }

  private buffer(name: string, n: number): Float32Array {
    return (this.buffers[name] = reuse(this.buffers[name] ?? null, n));
  }

  /**
   * Runs the encoder over a source batch: states [S, B, encoderSize] and the decoder's initial
   * state (views reused by the next call). With `training`, keeps what backward needs.
   */
  encode(batch: SourceBatch, training = false): Encoded {
    const { batch: B, sourceSteps: S, sourceLengths: lengths } = batch;
    const E = this.spec.embeddingSize;
    const H1 = this.spec.encoderHiddenSize;
    const Le = this.spec.encoderLayers;
    const x = this.sourceEmbedding.forward(batch.source);
    const opts = { steps: S, batch: B, lengths, training };
    const fwd = this.encoder.forward(x, opts);
    let states = fwd.output;
    const top = (st: RecurrentState, key: 'h' | 'c') =>
      (st[key] as Float32Array).subarray((Le - 1) * B * H1, Le * B * H1);
    let finalH = top(fwd.state, 'h');
    let finalC = this.bridgeC ? top(fwd.state, 'c') : null;
    if (this.encoderReverse) {
      const xr = reverseRows(x, this.buffer('xr', S * B * E), B, E, lengths);
      const bwd = this.encoderReverse.forward(xr, opts);
      const yb = reverseRows(bwd.output, this.buffer('yb', S * B * H1), B, H1, lengths);
      states = concatRows(fwd.output, yb, this.buffer('enc', S * B * 2 * H1), S * B, H1, H1);
      const cat = (key: 'h' | 'c', a: Float32Array) =>
        concatRows(a, top(bwd.state, key), this.buffer(`final_${key}`, B * 2 * H1), B, H1, H1);
      finalH = cat('h', finalH);
      if (finalC) finalC = cat('c', finalC);
    }
    const layerMajor = (y: Float32Array, name: string) =>
      swapLeadingAxes(
        y,
        this.buffer(name, y.length),
        B,
        this.spec.decoderLayers,
        this.spec.hiddenSize,
      );
    const initial: RecurrentState = { h: layerMajor(this.bridgeH.forward(finalH), 'h0') };
    if (this.bridgeC && finalC) initial.c = layerMajor(this.bridgeC.forward(finalC), 'c0');
    return { states, initial };
  }

  /** Teacher-forced logits [T*B, V] for a batch (a view reused by the next call). */
  private decode(batch: PairBatch, encoded: Encoded, training: boolean) {
    const { batch: B, targetSteps: T, sourceSteps: S } = batch;
    const y = this.targetEmbedding.forward(batch.targetIn);
    if (this.spec.inputFeeding) {
      const shape = this.feedingShape(batch, training);
      const ws = this.buffer('feed_ws', native.feedingWorkspaceSize(shape));
      const out = this.buffer('feed_out', T * B * this.spec.hiddenSize);
      const align = this.buffer('feed_align', T * B * S);
      native.feedingDecoderForward({
        shape,
        stack: this.decoder.weights.data,
        attention: this.attention.weights.data,
        x: y,
        enc: encoded.states,
        lengths: batch.sourceLengths,
        h0: encoded.initial.h,
        c0: encoded.initial.c ?? null,
        ws,
        out,
        align,
      });
      this.feeding = { shape, x: y, encoded };
      return { logits: this.output.forward(out), weights: align };
    }
    const dec = this.decoder.forward(y, {
      steps: T,
      batch: B,
      lengths: batch.targetLengths,
      state: encoded.initial,
      training,
    });
    const att = this.attention.forward(dec.output, encoded.states, {
      steps: T,
      sourceSteps: S,
      batch: B,
      lengths: batch.sourceLengths,
    });
    return { logits: this.output.forward(att.output), weights: att.weights };
  }

  private feedingShape(batch: PairBatch, training: boolean): FeedingShape {
    const s = this.spec;
    if (training) this.feedingSeed = (this.feedingSeed + batch.targetSteps) % 2 ** 52;
    return {
      cell: this.decoder.cellName,
      kind: s.attention,
      T: batch.targetSteps,
      S: batch.sourceSteps,
      B: batch.batch,
      E: s.embeddingSize,
      H: s.hiddenSize,
      L: s.decoderLayers,
      He: this.encoderSize,
      A: this.attention.attentionSize,
      dropout: s.dropout,
      training,
      seed: this.feedingSeed,
    };
  }

  /** From d(attentional states): the decoder's backward, to d(embedded targets), d(encoder
   * states) and d(initial state). */
  private decoderBackward(dout: Float32Array): {
    dx: Float32Array;
    denc: Float32Array;
    dState: RecurrentState;
  } {
    const f = this.feeding;
    if (!this.spec.inputFeeding || !f) {
      const { dq, denc } = this.attention.backward(dout);
      const { dx, dState } = this.decoder.backward(dq);
      return { dx, denc, dState };
    }
    const { T, S, B, E, H, L } = f.shape;
    const dx = this.buffer('feed_dx', T * B * E);
    const denc = this.buffer('feed_denc', S * B * this.encoderSize);
    const dState: RecurrentState = { h: this.buffer('feed_dh0', L * B * H) };
    if (f.encoded.initial.c) dState.c = this.buffer('feed_dc0', L * B * H);
    native.feedingDecoderBackward({
      shape: f.shape,
      stack: this.decoder.weights.data,
      attention: this.attention.weights.data,
      x: f.x,
      enc: f.encoded.states,
      lengths: (this.last as PairBatch).sourceLengths,
      h0: f.encoded.initial.h,
      c0: f.encoded.initial.c ?? null,
      ws: this.buffer('feed_ws', native.feedingWorkspaceSize(f.shape)),
      out: this.buffer('feed_out', T * B * H),
      align: this.buffer('feed_align', T * B * S),
      dout,
      dx,
      denc,
      dh0: dState.h,
      dc0: dState.c ?? null,
      dstack: this.decoder.weights.grad,
      dattention: this.attention.weights.grad,
    });
    return { dx, denc, dState };
  }

  /**
   * One teacher-forced training forward and backward over a padded batch: returns the mean
   * cross-entropy per target token (eos included) and adds every parameter's gradient.
   */
  lossAndGradients(batch: PairBatch, labelSmoothing = 0): { loss: number; count: number } {
    if (labelSmoothing !== this.trainLoss.labelSmoothing) {
      this.trainLoss = new SoftmaxCrossEntropy({ ignoreIndex: IGNORE_INDEX, labelSmoothing });
    }
    const loss = this.trainLoss;
    const encoded = this.encode(batch, true);
    const { logits } = this.decode(batch, encoded, true);
    const r = loss.forward(logits, batch.targetOut, this.spec.targetVocab);
    this.last = batch;
    this.backward(loss.backward());
    return { loss: r.loss, count: r.count };
  }

  /** Sum of the cross-entropy over a batch's target tokens, without gradients. */
  lossSum(batch: PairBatch): { sum: number; count: number } {
    const { logits } = this.decode(batch, this.encode(batch, false), false);
    const { sum, count } = this.loss.forward(logits, batch.targetOut, this.spec.targetVocab);
    return { sum, count };
  }

  /** The most likely token [T, B] at every teacher-forced decoder step, without gradients. */
  predictions(batch: PairBatch): Int32Array {
    const V = this.spec.targetVocab;
    const { logits } = this.decode(batch, this.encode(batch, false), false);
    const out = new Int32Array(logits.length / V);
    for (let r = 0, at = 0; r < out.length; r++, at += V) {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[at + v] > logits[at + best]) best = v;
      out[r] = best;
    }
    return out;
  }

  /**
   * The seeds of the dropout masks, which every training step advances; a resumed run sets them
   * back so that it draws the masks the uninterrupted run would have.
   */
  get dropoutSeeds(): number[] {
    return [this.feedingSeed, ...this.stacks().map((s) => s.dropoutSeed)];
  }

  set dropoutSeeds(seeds: number[]) {
    const stacks = this.stacks();
    if (
      !Array.isArray(seeds) ||
      seeds.length !== stacks.length + 1 ||
      !seeds.every((x) => Number.isSafeInteger(x) && x >= 0)
    ) {
      throw new RangeError(`dropoutSeeds must be ${stacks.length + 1} integers >= 0`);
    }
    this.feedingSeed = seeds[0];
    stacks.forEach((s, i) => (s.dropoutSeed = seeds[i + 1]));
  }

  private stacks(): RecurrentStack[] {
    return [this.encoder, this.encoderReverse, this.decoder].filter((s) => s !== null);
  }

  /**
   * Attention weights [T, B, S] of teacher-forced decoding (a copy): the alignment the model
   * assigns to a known target.
   */
  alignments(batch: PairBatch): Float32Array {
    return this.decode(batch, this.encode(batch, false), false).weights.slice();
  }

  private backward(dlogits: Float32Array): void {
    const batch = this.last;
    if (!batch) throw new Error('Seq2Seq.backward called before a training forward');
    const { batch: B, sourceSteps: S, sourceLengths: lengths } = batch;
    const H1 = this.spec.encoderHiddenSize;
    const Le = this.spec.encoderLayers;
    const dout = this.output.backward(dlogits) as Float32Array;
    const dec = this.decoderBackward(dout);
    const denc = dec.denc;
    this.targetEmbedding.backward(dec.dx);

    // Bridge: d(initial state) -> d(final encoder state of the top layer).
    const batchMajor = (d: Float32Array, name: string) =>
      swapLeadingAxes(
        d,
        this.buffer(name, d.length),
        B,
        this.spec.decoderLayers,
        this.spec.hiddenSize,
        true,
      );
    const dFinalH = this.bridgeH.backward(batchMajor(dec.dState.h, 'dh0')) as Float32Array;
    const dFinalC =
      this.bridgeC && dec.dState.c
        ? (this.bridgeC.backward(batchMajor(dec.dState.c, 'dc0')) as Float32Array)
        : null;
    const stateGrad = (name: string, top: Float32Array | null): Float32Array | undefined => {
      if (!top) return undefined;
      const d = this.buffer(name, Le * B * H1);
      d.fill(0);
      d.set(top, (Le - 1) * B * H1);
      return d;
    };
    const dState = (suffix: string, h: Float32Array, c: Float32Array | null) => {
      const st: RecurrentState = { h: stateGrad(`dhT${suffix}`, h) as Float32Array };
      const dc = stateGrad(`dcT${suffix}`, c);
      if (dc) st.c = dc;
      return st;
    };

    if (!this.encoderReverse) {
      const { dx } = this.encoder.backward(denc, dState('', dFinalH, dFinalC));
      this.sourceEmbedding.backward(dx);
      return;
    }
    const n = S * B;
    const split = (src: Float32Array, rows: number, name: string) => {
      const a = this.buffer(`${name}_f`, rows * H1);
      const b = this.buffer(`${name}_b`, rows * H1);
      splitRows(src, a, b, rows, H1, H1);
      return [a, b];
    };
    const [dencF, dencB] = split(denc, n, 'denc');
    const [dhF, dhB] = split(dFinalH, B, 'dfinal_h');
    const [dcF, dcB] = dFinalC ? split(dFinalC, B, 'dfinal_c') : [null, null];
    const dyb = reverseRows(dencB, this.buffer('dyb', n * H1), B, H1, lengths);
    const { dx: dxr } = this.encoderReverse.backward(dyb, dState('_b', dhB, dcB));
    const E = this.spec.embeddingSize;
    const dxs = reverseRows(dxr, this.buffer('dxs', n * E), B, E, lengths);
    const { dx } = this.encoder.backward(dencF, dState('_f', dhF, dcF));
    for (let i = 0; i < dx.length; i++) dxs[i] += dx[i];
    this.sourceEmbedding.backward(dxs);
  }

  /**
   * The matrices a quantized model holds in int8 or bfloat16, by checkpoint name: the recurrent
   * layers' weight_ih and weight_hh (encoder and decoder), the bridge's weights, the attention's
   * weight matrices and the output layer's weight, as [rows, cols] views of the parameters.
   * Embeddings, biases and additive attention's v stay float32. The encoder and the bridge run
   * once per source, in float32 on the quantized values; the decoder's search multiplies in the
   * quantized type.
   */
  quantizedMatrices(): QuantizedMatrix[] {
    const bridges = [this.bridgeH, this.bridgeC].flatMap((b, i) =>
      b ? [{ name: `bridge_${'hc'[i]}.weight`, rows: b.weight.shape[0], data: b.weight.data }] : [],
    );
    return [
      ...this.encoder.quantizedMatrices('encoder'),
      ...(this.encoderReverse?.quantizedMatrices('encoder_reverse') ?? []),
      ...bridges,
      ...Object.values(this.decoderMatrices()).flat(),
    ];
  }

  /** The quantized matrices the decoder's search multiplies: stack, attention, output layer. */
  private decoderMatrices() {
    const attention = Object.entries(this.attention.tensors())
      .filter(([, t]) => t.shape.length === 2)
      .map(([name, t]) => ({ name: `attention.${name}`, rows: t.shape[0], data: t.data }));
    const output = {
      name: 'output.weight',
      rows: this.spec.targetVocab,
      data: this.output.weight.data,
    };
    return { stack: this.decoder.quantizedMatrices('decoder'), attention, output };
  }

  protected override releaseNative(): void {
    this.packed.release();
  }

  /** The decoder's shape and weights: the fields of native beam search's options that name them. */
  nativeDecoder() {
    const s = this.spec;
    const q = this.quantization;
    const m = this.decoderMatrices();
    return {
      decoder: {
        cell: this.decoder.cellName,
        kind: s.attention,
        inputFeeding: s.inputFeeding,
        V: s.targetVocab,
        E: s.embeddingSize,
        H: s.hiddenSize,
        L: s.decoderLayers,
        He: this.encoderSize,
        A: this.attention.attentionSize,
      },
      embedding: this.targetEmbedding.weight.data,
      stack: this.decoder.weights.data,
      attention: this.attention.weights.data,
      outWeight: this.output.weight.data,
      outBias: this.output.bias?.data ?? new Float32Array(s.targetVocab),
      ...(q && { weights: q.dtype }),
      ...(q?.dtype === 'int8' && {
        stackScales: joinedScales(q, m.stack),
        attentionScales: joinedScales(q, m.attention),
        outScales: q.scales[m.output.name],
      }),
    };
  }

  /**
   * Native beam search (beam 1: greedy, or sampling with temperature > 0) over an already padded
   * source batch, with the search's native config; token-level results.
   */
  decodeBeams(batch: SourceBatch, config: BeamSearchConfig) {
    // A search of several rows runs on rnnkit's threads, and after a product on OpenBLAS's threads
    // its workers spin for a while on the cores the search needs: the encoder's products run on
    // rnnkit's threads too. A single row's encoder is small, and faster on OpenBLAS's.
    const encode = () => this.encode(batch, false);
    const { states, initial } =
      batch.batch * config.beam > 1 ? native.withBuiltinProducts(encode) : encode();
    // Copies: the encoder's buffers are reused by the next encode, which may run while the
    // asynchronous search still reads these.
    const packed = this.packed.get(
      this.quantization,
      () => new native.PackedSeq2SeqDecoder(this.nativeDecoder()),
    );
    return native.seq2seqBeamSearchAsync({
      ...(packed ? { packed } : this.nativeDecoder()),
      enc: states.slice(),
      lengths: batch.sourceLengths.slice(),
      h0: initial.h.slice(),
      c0: initial.c?.slice() ?? null,
      config,
    });
  }
}
