// The only file that loads the native addon; it types every native function.
import { type AddonChoice, loadAddon } from './addon';
import { VERSION } from './constants';

export type CellName = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru';

/**
 * The precision of a training call's matrix products: float32, or bfloat16 operands with float32
 * sums ('bf16'; the weights, gradients and everything outside the products stay float32).
 */
export type Precision = 'float32' | 'bf16';

/** Shape of a recurrent stack call (time-major [T, B, I] input, L layers of hidden size H). */
export interface StackShape {
  cell: CellName;
  T: number;
  B: number;
  I: number;
  H: number;
  L: number;
  dropout: number;
  residual: boolean;
  training: boolean;
  seed: number;
  /** The products' precision, forward and backward (default 'float32'). */
  precision?: Precision;
}

type F32 = Float32Array;
type I32 = Int32Array;
type Opt<T> = T | null;

/** What the addon was built with and chose on this machine (rnnkit's version: core/constants). */
export interface NativeInfo {
  /** The instruction-set variant of the loaded addon: baseline, avx2, avx512 or native. */
  isa: string;
  /** The BLAS in use: OpenBLAS where its library was found at run time, else the built-in GEMM. */
  gemm: 'openblas' | 'builtin';
  /** OpenBLAS's core: the kernels it runs on this CPU ("Haswell", "SkylakeX"...); "" without it. */
  blasCore: string;
  /** The OpenBLAS library file opened ("" without it). */
  blasLibrary: string;
  /** Vector width of the built-in GEMM's kernel in bits: 512 (AVX-512), 256 (AVX2) or 128. */
  builtinVectorBits: number;
  /**
   * Which GEMM runs the products of 16 rows or more (fewer rows run on OpenBLAS where it is
   * there): the one measured faster on this CPU at first use, or RNNKIT_PRODUCTS.
   */
  products: 'openblas' | 'builtin';
  /** The single-core GFLOP/s behind that choice; null where none was measured. */
  calibration: { openblasGflops: number; builtinGflops: number } | null;
  /** The int8 product of this build on this CPU (native/core/qgemm.h). */
  int8Kernel: 'avx512-vnni' | 'avx-vnni' | 'avx2' | 'arm64-sdot' | 'portable';
  /**
   * The CPU's bfloat16 instructions (AVX512-BF16 counted only with the AVX-512 state the OS saves;
   * AMX-BF16 as the CPU reports it, not used by rnnkit) and the kernel that runs bf16 training
   * products: 'avx512-bf16' (vdpbf16ps), 'emulated' (RNNKIT_BF16=emulate: operands rounded to
   * bfloat16, float32 GEMM; for testing), or null where there is none and bf16 training is refused.
   */
  bf16: { avx512Bf16: boolean; amxBf16: boolean; products: 'avx512-bf16' | 'emulated' | null };
  threads: number;
  cuda: boolean;
  /** With cuda: the device the CUDA kernels would run on, or why there is none. */
  cudaDevice?: {
    count: number;
    name: string;
    totalMemory: number;
    freeMemory: number;
    computeCapability: string;
    status: string;
    gemm: string;
  };
}

export interface GemmShape {
  transA: boolean;
  transB: boolean;
  /** 'auto': the GEMM rnnkit's layers use; 'blas': the build's BLAS; 'builtin': rnnkit's own. */
  kernel: 'auto' | 'blas' | 'builtin';
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
}

export interface AdamConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
}

export interface SgdConfig {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
}

/**
 * What a recurrent stack's forward and backward both read: the flat parameters, the input x
 * [T, B, I], each row's length (null: all T), the initial state [L, B, H] (null: zeros; c0 for
 * LSTM only) and the workspace (stackWorkspaceSize(shape) floats).
 */
export interface StackInputs {
  shape: StackShape;
  params: F32;
  x: F32;
  lengths: Opt<I32>;
  h0: Opt<F32>;
  c0: Opt<F32>;
  ws: F32;
}

/** Writes the output y [T, B, H] and the final state hT (and cT, LSTM only) [L, B, H]. */
export interface StackForwardOptions extends StackInputs {
  y: F32;
  hT: F32;
  cT: Opt<F32>;
}

/**
 * From dy [T, B, H] and the final state's gradient (null: none), writes dx (null: not wanted) and
 * the initial state's gradient, and adds into dparams; ws is a training forward's.
 */
export interface StackBackwardOptions extends StackInputs {
  dy: F32;
  dhT: Opt<F32>;
  dcT: Opt<F32>;
  dx: Opt<F32>;
  dh0: Opt<F32>;
  dc0: Opt<F32>;
  dparams: F32;
}
type LinearShape = { N: number; I: number; O: number; precision?: Precision };

/** Language-model weights as the native generation loop reads them. */
export interface LmWeights {
  cell: CellName;
  V: number;
  E: number;
  H: number;
  L: number;
  residual: boolean;
  embedding: F32;
  stack: F32;
  decoderWeight: F32;
  decoderBias: F32;
  /** The type the products run in (default 'float32'); see native/core/qgemm.h. */
  weights?: 'float32' | 'int8' | 'bf16';
  /**
   * int8 only (the matrices then hold q * scale): each row's scale of every layer's w_ih then w_hh
   * [L, 2, G*H], and of the decoder's weight [V].
   */
  stackScales?: F32;
  decoderScales?: F32;
}

/**
 * A model's weights packed natively once (new PackedLm(weights), new PackedSeq2SeqDecoder(decoder)),
 * for a model whose weights no longer change: the operations that take weights take it instead.
 */
export interface NativePacked {
  /** Bytes of the packed weights (0 once released). */
  readonly weightBytes: number;
  /** Frees them once the calls sharing them have ended; using the object afterwards is an error. */
  release(): void;
}

/** Token sequences concatenated, with offsets [n+1]. */
export interface NativeRagged {
  tokens: I32;
  offsets: I32;
}

export interface NativeSamplerOptions {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  noRepeatNgramSize: number;
}

export interface NativeGenerateOptions extends NativeSamplerOptions {
  maxTokens: number;
  seed: number;
  rowOffset: number;
}

/** Generated tokens [B, maxTokens], each row's length, and why it ended (a FINISH_* reason). */
export interface NativeGenerateResult {
  tokens: I32;
  lengths: I32;
  finish: I32;
}

/** The shape of a language model, for a TokenLoop whose logits come from elsewhere. */
export interface TokenLoopModel {
  V: number;
  L: number;
  H: number;
  /** Whether a row's state holds an LSTM's c beside h. */
  lstm: boolean;
}

/** What the planned rows of a round read: rows[k] reads tokens[offsets[k], offsets[k+1]). */
export interface TokenLoopPlan {
  /** Row indices (increasing) into the loop's rows. */
  rows: I32;
  tokens: I32;
  offsets: I32;
  /** Positions in `rows` whose logits after their last token are wanted, in sample's order. */
  want: I32;
}

/**
 * One round's outcome: the row ids `rows` sampled `tokens`; then the rows `done` ended with
 * `lengths` tokens kept (a matched stop sequence not counted) and `finish` reasons.
 */
export interface TokenLoopStep {
  rows: I32;
  tokens: I32;
  done: I32;
  lengths: I32;
  finish: I32;
}

/**
 * lmGenerate's token loop for a loop driven from JS (native/core/token_loop.h): its rows (each
 * with its prompt, sampler, random stream, stops and token limit), their recurrent state [L, rows,
 * H], prompt feeding in chunks, sampling, stop matching, finishing and retiring. A round is
 * plan() -> the model advances the planned rows (readState/writeState) and computes the wanted
 * logits -> sample(logits); a loop made with the model's weights runs a whole round with run().
 */
export interface NativeTokenLoop {
  readonly size: number;
  /** Bytes of the packed weights (and biases, embedding table) of a loop made with weights; else 0. */
  readonly weightBytes: number;
  /** Each row's id, in row order. */
  ids(): I32;
  /**
   * Appends one row per prompt with ids[b]; row b samples with lmGenerate's stream for row
   * options.rowOffset + b. The rows of one group share plan's prompt budget.
   */
  add(
    ids: I32,
    prompts: NativeRagged,
    options: NativeGenerateOptions,
    stops: NativeRagged | null,
    group: number,
  ): void;
  /** Ends these rows (by id) as cancelled at the next sample. */
  cancel(ids: I32): void;
  /**
   * The next round: rows that sampled read their token; priming rows read up to `chunk` prompt
   * tokens each, or `sharedChunk` when some row reads a sampled token, and a group `budget` in all.
   */
  plan(chunk: number, sharedChunk: number, budget: number): TokenLoopPlan;
  readState(rows: I32, h: F32, c: Opt<F32>): void;
  writeState(rows: I32, h: F32, c: Opt<F32>): void;
  /** Samples the wanted rows of the last plan from logits [want.length, V]; retires ended rows. */
  sample(logits: F32): TokenLoopStep;
  /** plan, the packed model's round and sample in one call (a loop made with weights only). */
  run(chunk: number, sharedChunk: number, budget: number): TokenLoopStep;
}

export type AttentionKind = 'dot' | 'general' | 'additive';

/** Luong attention over T decoder steps, S source positions and B rows (time-major tensors). */
export interface AttentionShape {
  kind: AttentionKind;
  T: number;
  S: number;
  B: number;
  Hd: number;
  He: number;
  A: number;
}

/**
 * Queries q [T, B, Hd] over encoder states enc [S, B, He] of source lengths [B]: writes the
 * weights align [T, B, S] and the attentional states out [T, B, Hd] (ws keeps what backward needs).
 */
export interface LuongForwardOptions {
  shape: AttentionShape;
  params: F32;
  q: F32;
  enc: F32;
  lengths: I32;
  ws: F32;
  align: F32;
  out: F32;
}

/** From dout (overwritten), writes dq and denc and adds into dparams. */
export interface LuongBackwardOptions extends LuongForwardOptions {
  dout: F32;
  dq: F32;
  denc: F32;
  dparams: F32;
}

/** The input-feeding decoder over T target steps (its stack's input is E + H wide). */
export interface FeedingShape {
  cell: CellName;
  kind: AttentionKind;
  T: number;
  S: number;
  B: number;
  E: number;
  H: number;
  L: number;
  He: number;
  A: number;
  dropout: number;
  training: boolean;
  seed: number;
}

/**
 * The decoder's stack and attention parameters, the embedded targets x [T, B, E], encoder states
 * enc [S, B, He] of source lengths [B] and the initial state [L, B, H] (null: zeros; c0 for LSTM
 * only): writes the attentional states out [T, B, H] and the weights align [T, B, S].
 */
export interface FeedingForwardOptions {
  shape: FeedingShape;
  stack: F32;
  attention: F32;
  x: F32;
  enc: F32;
  lengths: I32;
  h0: Opt<F32>;
  c0: Opt<F32>;
  ws: F32;
  out: F32;
  align: F32;
}

/** From dout, writes dx (null: not wanted), denc and dh0/dc0; adds into dstack and dattention. */
export interface FeedingBackwardOptions extends FeedingForwardOptions {
  dout: F32;
  dx: Opt<F32>;
  denc: F32;
  dh0: Opt<F32>;
  dc0: Opt<F32>;
  dstack: F32;
  dattention: F32;
}

/** The decoder of a seq2seq model as native beam search reads it. */
export interface Seq2SeqDecoderShape {
  cell: CellName;
  kind: AttentionKind;
  inputFeeding: boolean;
  V: number;
  E: number;
  H: number;
  L: number;
  He: number;
  A: number;
}

export interface BeamSearchConfig extends NativeSamplerOptions {
  seed: number;
  S: number;
  B: number;
  beam: number;
  nBest: number;
  maxLength: number;
  lengthPenalty: number;
  bos: number;
  eos: number;
}

/** tokens [B, nBest, maxLength] (-1 after each end), lengths/scores [B, nBest], align [.., S]. */
export interface BeamSearchResult {
  tokens: I32;
  lengths: I32;
  scores: F32;
  align: F32;
}

/**
 * seq2seqBeamSearch's search with the decoder outside the addon: while `next(tokens, parents)`
 * (it writes the token each of the `rows` = B * beam rows reads next and the row whose decoder
 * state it continues), decode one step and pass its logits [rows, V] (turned into
 * log-probabilities in place) and attention [rows, S] to `step`; then `results()`.
 */
export interface NativeBeamSearch {
  readonly rows: number;
  next(tokens: I32, parents: I32): boolean;
  step(logits: F32, align: F32): void;
  results(): BeamSearchResult;
}

/** A seq2seq decoder's weights, as native beam search reads them. */
export interface Seq2SeqDecoderWeights {
  decoder: Seq2SeqDecoderShape;
  embedding: F32;
  stack: F32;
  attention: F32;
  outWeight: F32;
  outBias: F32;
  /** The type the search's products run in (default 'float32'); see native/core/qgemm.h. */
  weights?: 'float32' | 'int8' | 'bf16';
  /**
   * int8 only (the matrices then hold q * scale): each row's scale of the decoder stack's w_ih
   * then w_hh, layer after layer [L, 2, G*H], of the attention's matrices in the order of its
   * parameters (attention.h), and of the output layer's weight [V].
   */
  stackScales?: F32;
  attentionScales?: F32;
  outScales?: F32;
}

/**
 * A seq2seq decoder's weights (or the PackedSeq2SeqDecoder of them), the encoder states
 * enc [S, B, He] of source lengths [B], the initial state h0 (and c0, LSTM only) [L, B, H], and
 * the search's config.
 */
export type BeamSearchOptions = (Seq2SeqDecoderWeights | { packed: NativePacked }) & {
  enc: F32;
  lengths: I32;
  h0: F32;
  c0: Opt<F32>;
  config: BeamSearchConfig;
};

export interface Native {
  /** The variant this build is, the CPU's name, and the variants this CPU and OS run (best first). */
  cpu(): { isa: string; cpu: string; supported: string[] };
  info(): NativeInfo;
  setThreads(threads: number): void;
  /**
   * Calls fn with the products it runs on this thread on the built-in GEMM and rnnkit's threads,
   * never OpenBLAS's, and returns its result: for work that a search on rnnkit's threads follows
   * at once, where OpenBLAS's workers would spin on the cores the search needs.
   */
  withBuiltinProducts<T>(fn: () => T): T;
  /** Detaches each ArrayBuffer of the list (SharedArrayBuffers are left), freeing it now. */
  releaseBuffers(buffers: ArrayBufferLike[]): void;
  stackParamCount(shape: { cell: CellName; I: number; H: number; L: number }): number;
  stackWorkspaceSize(shape: StackShape): number;
  stackForward(options: StackForwardOptions): void;
  stackForwardAsync(options: StackForwardOptions): Promise<void>;
  stackBackward(options: StackBackwardOptions): void;
  embeddingForward(shape: { V: number; E: number }, table: F32, ids: I32, out: F32): void;
  embeddingBackward(shape: { V: number; E: number }, ids: I32, dout: F32, dtable: F32): void;
  linearForward(shape: LinearShape, x: F32, W: F32, b: Opt<F32>, y: F32): void;
  linearBackward(
    shape: LinearShape,
    x: F32,
    W: F32,
    dy: F32,
    dx: Opt<F32>,
    dW: F32,
    db: Opt<F32>,
  ): void;
  softmaxXentForward(
    shape: { N: number; V: number },
    logits: F32,
    targets: I32,
    ignoreIndex: number,
    labelSmoothing: number,
    lse: F32,
  ): { sum: number; count: number };
  softmaxXentBackward(
    shape: { N: number; V: number },
    logits: F32,
    targets: I32,
    ignoreIndex: number,
    labelSmoothing: number,
    lse: F32,
    scale: number,
    dlogits: F32,
  ): void;
  dropout(x: F32, p: number, seed: number, y: F32): void;
  globalNorm(tensors: F32[]): number;
  clipGlobalNorm(grads: F32[], maxNorm: number): number;
  adamUpdate(params: F32[], grads: F32[], m: F32[], v: F32[], step: number, cfg: AdamConfig): void;
  sgdUpdate(params: F32[], grads: F32[], velocity: F32[], cfg: SgdConfig): void;
  lmGenerate(
    weights: LmWeights | NativePacked,
    prompts: NativeRagged,
    options: NativeGenerateOptions,
    stops: NativeRagged | null,
    cancel: I32 | null,
  ): NativeGenerateResult;
  lmGenerateAsync(
    weights: LmWeights | NativePacked,
    prompts: NativeRagged,
    options: NativeGenerateOptions,
    stops: NativeRagged | null,
    cancel: I32 | null,
    onTokens?: (step: number, rows: I32, tokens: I32) => void,
  ): Promise<NativeGenerateResult>;
  /**
   * The negative log-likelihood (nats) summed over tokens' next-token predictions, read as `rows`
   * streams (the first (n - 1) % rows one longer), each from a zero state: the packed steps' loss.
   */
  lmScore(weights: LmWeights | NativePacked, tokens: I32, rows: number): number;
  lmScoreAsync(weights: LmWeights | NativePacked, tokens: I32, rows: number): Promise<number>;
  /** A language model's weights packed once, for lmGenerate and lmScore. */
  PackedLm: new (weights: LmWeights) => NativePacked;
  /** A seq2seq decoder's weights packed once, for seq2seqBeamSearch ({ packed }). */
  PackedSeq2SeqDecoder: new (decoder: Seq2SeqDecoderWeights) => NativePacked;
  TokenLoop: new (model: TokenLoopModel | LmWeights) => NativeTokenLoop;
  attentionParamCount(shape: AttentionShape): number;
  attentionWorkspaceSize(shape: AttentionShape): number;
  luongAttentionForward(options: LuongForwardOptions): void;
  luongAttentionBackward(options: LuongBackwardOptions): void;
  feedingWorkspaceSize(shape: FeedingShape): number;
  feedingDecoderForward(options: FeedingForwardOptions): void;
  feedingDecoderBackward(options: FeedingBackwardOptions): void;
  seq2seqBeamSearch(options: BeamSearchOptions): BeamSearchResult;
  seq2seqBeamSearchAsync(options: BeamSearchOptions): Promise<BeamSearchResult>;
  BeamSearch: new (config: BeamSearchConfig & { V: number }) => NativeBeamSearch;
  gemm(shape: GemmShape, A: F32, B: F32, C: F32): void;
  gemmAsync(shape: GemmShape, A: F32, B: F32, C: F32): Promise<void>;
  bpeTrain(
    corpus: { text: string } | { file: string },
    options: { maxMerges: number; minFrequency: number },
    classes: CharClassRanges,
    cancel: Opt<I32>,
    onProgress?: (done: number, total: number) => void,
  ): Promise<I32>;
  BpeEncoder: new (merges: I32, classes: CharClassRanges) => NativeBpeEncoder;
}

/**
 * The Unicode classes the byte-level BPE pre-tokenizer reads, as sorted inclusive code point
 * ranges [lo0, hi0, lo1, hi1, ...].
 */
export interface CharClassRanges {
  letter: I32;
  number: I32;
  space: I32;
}

/** Learned merges held natively; ids are 0..255 for bytes and 256 + k for merge k. */
export interface NativeBpeEncoder {
  encode(text: string): I32;
}

const loaded = loadAddon();

/** Which addon file and instruction-set variant were loaded, and why. */
export const addonChoice: AddonChoice = loaded.choice;

export const native = loaded.addon as Native;

/** rnnkit's version, what the native addon runs with, and which addon file was loaded. */
export interface Info extends NativeInfo {
  /** rnnkit's version (package.json's). */
  version: string;
  /** The addon file loaded. */
  addon: string;
  /** Where it came from: a prebuilt binary, a source build, or RNNKIT_ADDON. */
  addonSource: AddonChoice['source'];
  /** The CPU's name as it reports it. */
  cpu: string;
}

/** The loaded addon and its variant, the GEMM backend and its threads, CUDA, version. */
export function info(): Info {
  return {
    version: VERSION,
    ...native.info(),
    addon: addonChoice.file,
    addonSource: addonChoice.source,
    cpu: addonChoice.cpu,
  };
}

/**
 * Frees the memory of arrays the caller owns now, instead of at the garbage collection that finds
 * them unreachable: the ArrayBuffer under each array that spans all of it is detached, and every
 * view of it reads as empty after. An array over part of a buffer (a slice of Node's Buffer pool,
 * a tensor inside a file's bytes) and arrays over shared memory are left to the collector.
 */
export function releaseArrays(arrays: Iterable<ArrayBufferView>): void {
  const whole = new Set<ArrayBufferLike>();
  for (const a of arrays) {
    if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) whole.add(a.buffer);
  }
  native.releaseBuffers([...whole]);
}
