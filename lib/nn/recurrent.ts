import { native, type CellName, type Precision, type StackShape } from '../core/native';
import { Random } from '../core/random';
import { checkChoice, checkInt, checkNumber } from '../core/validate';
import { Module, Parameter, reuse } from './parameter';
import type { QuantizedMatrix } from './quantize';

/**
 * Weight layout. A stack keeps one flat parameter buffer, layer after layer, each layer
 *   weight_ih [G*H, I_l], weight_hh [G*H, H], bias_ih [G*H], bias_hh [G*H]   (I_0 = inputSize, else H)
 * with the G gate blocks stacked along the rows in PyTorch's order: LSTM (i, f, g, o), GRU (r, z, n),
 * RNN a single block. This is exactly PyTorch's nn.RNN/LSTM/GRU layout, so the PyTorch conversion
 * copies blocks unchanged; ONNX's order (LSTM i, o, f, c; GRU z, r, h) is a permutation of blocks.
 */
export type CellType = 'rnn' | 'lstm' | 'gru';
export const CELLS: readonly CellType[] = ['rnn', 'lstm', 'gru'];
export const NONLINEARITIES = ['tanh', 'relu'] as const;

export interface RecurrentOptions {
  inputSize: number;
  hiddenSize: number;
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** Dropout on the output of every layer but the last, in training (default 0). */
  dropout?: number;
  /** Add each layer's input to its output for layers after the first (default false). */
  residual?: boolean;
  /** Vanilla RNN only: 'tanh' (default) or 'relu'. */
  nonlinearity?: 'tanh' | 'relu';
  /** Seed for initialisation and dropout masks. */
  seed?: number;
}

/** Hidden state of every layer, [numLayers, batch, hiddenSize]; `c` is the LSTM cell state. */
export interface RecurrentState {
  h: Float32Array;
  c?: Float32Array;
}

export interface RecurrentForwardOptions {
  /** Time steps T and batch size B of x, which is [T, B, inputSize] (time-major). */
  steps: number;
  batch: number;
  /** Valid steps of each row (1..T); rows are padded after their length. */
  lengths?: Int32Array;
  /** Initial state (default zeros). */
  state?: RecurrentState;
  /** Keep what backward needs and apply dropout (default false). */
  training?: boolean;
  /**
   * The matrix products' precision, in this forward and its backward (default 'float32'); 'bf16'
   * needs a CPU with bfloat16 products (`info().bf16.products`).
   */
  precision?: Precision;
}

export interface RecurrentLayerWeights {
  weightIh: Float32Array;
  weightHh: Float32Array;
  biasIh: Float32Array;
  biasHh: Float32Array;
}

const GATES: Record<CellName, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 };
/** Which PyTorch gate block goes to each ONNX position. */
const ONNX_ORDER: Record<CellName, number[]> = {
  rnn_tanh: [0],
  rnn_relu: [0],
  lstm: [0, 3, 1, 2],
  gru: [1, 0, 2],
};

export class RecurrentStack extends Module {
  readonly cellName: CellName;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly dropout: number;
  readonly residual: boolean;
  readonly weights: Parameter;
  /** Seed of the dropout masks, advanced by every training forward (a resumed run restores it). */
  dropoutSeed: number;

  private shape: StackShape | null = null;
  private x: Float32Array | null = null;
  private lengths: Int32Array | null = null;
  private h0: Float32Array | null = null;
  private c0: Float32Array | null = null;
  private ws: Float32Array | null = null;
  private y: Float32Array | null = null;
  private hT: Float32Array | null = null;
  private cT: Float32Array | null = null;
  private dx: Float32Array | null = null;
  private dh0: Float32Array | null = null;
  private dc0: Float32Array | null = null;

  constructor(cell: CellType, options: RecurrentOptions) {
    super();
    checkChoice('cell', cell, CELLS);
    const nl = checkChoice('nonlinearity', options.nonlinearity ?? 'tanh', NONLINEARITIES);
    if (cell !== 'rnn' && options.nonlinearity !== undefined) {
      throw new RangeError(`nonlinearity applies to cell 'rnn' only, not '${cell}'`);
    }
    this.cellName = cell === 'rnn' ? (nl === 'relu' ? 'rnn_relu' : 'rnn_tanh') : cell;
    this.inputSize = checkInt('inputSize', options.inputSize, 1);
    this.hiddenSize = checkInt('hiddenSize', options.hiddenSize, 1);
    this.numLayers = checkInt('numLayers', options.numLayers ?? 1, 1, 64);
    this.dropout = checkNumber('dropout', options.dropout ?? 0, 0, 0.99);
    this.residual = options.residual ?? false;
    const rng = new Random(options.seed ?? Date.now());
    const n = native.stackParamCount({
      cell: this.cellName,
      I: this.inputSize,
      H: this.hiddenSize,
      L: this.numLayers,
    });
    this.weights = new Parameter('weights', [n]);
    const bound = 1 / Math.sqrt(this.hiddenSize);
    rng.fillUniform(this.weights.data, -bound, bound);
    this.dropoutSeed = Math.floor(rng.uniform() * 2 ** 40);
  }

  get cell(): CellType {
    return this.cellName === 'lstm' || this.cellName === 'gru' ? this.cellName : 'rnn';
  }

  get gates(): number {
    return GATES[this.cellName];
  }

  parameters(): Parameter[] {
    return [this.weights];
  }

  describe(): string {
    const name = this.cell === 'rnn' ? 'RNN' : this.cell.toUpperCase();
    const extra = [
      this.numLayers > 1 ? `numLayers=${this.numLayers}` : '',
      this.dropout > 0 ? `dropout=${this.dropout}` : '',
      this.residual ? 'residual' : '',
      this.cellName === 'rnn_relu' ? 'relu' : '',
    ].filter(Boolean);
    return `${name}(${this.inputSize} -> ${this.hiddenSize}${extra.length ? ', ' + extra.join(', ') : ''})`;
  }

  /** Size of one state tensor for a batch: numLayers * batch * hiddenSize. */
  stateSize(batch: number): number {
    return this.numLayers * batch * this.hiddenSize;
  }

  /** A zero state for `batch` rows. */
  zeroState(batch: number): RecurrentState {
    const n = this.stateSize(batch);
    return this.cellName === 'lstm'
      ? { h: new Float32Array(n), c: new Float32Array(n) }
      : { h: new Float32Array(n) };
  }

  /** Views of layer l's weights inside the flat buffer (of `buf`, default the parameters). */
  layerWeights(l: number, buf: Float32Array = this.weights.data): RecurrentLayerWeights {
    checkInt('layer', l, 0, this.numLayers - 1);
    const G = this.gates;
    const H = this.hiddenSize;
    const I = l === 0 ? this.inputSize : H;
    let at = 0;
    for (let k = 0; k < l; k++) at += G * H * ((k === 0 ? this.inputSize : H) + H + 2);
    const take = (n: number) => buf.subarray(at, (at += n));
    return {
      weightIh: take(G * H * I),
      weightHh: take(G * H * H),
      biasIh: take(G * H),
      biasHh: take(G * H),
    };
  }

  /**
   * Every layer's weight_ih and weight_hh as views [G*H, cols] under their checkpoint names
   * (`prefix.weight_ih_l0`, ...), layer after layer: what a quantized model rounds, and the order
   * of the native steps' scales.
   */
  quantizedMatrices(prefix: string): QuantizedMatrix[] {
    const rows = this.gates * this.hiddenSize;
    return Array.from({ length: this.numLayers }, (_, l) => {
      const w = this.layerWeights(l);
      return [
        { name: `${prefix}.weight_ih_l${l}`, rows, data: w.weightIh },
        { name: `${prefix}.weight_hh_l${l}`, rows, data: w.weightHh },
      ];
    }).flat();
  }

  /**
   * Runs the whole sequence x [T, B, inputSize] through every layer in one native call.
   * Returns the last layer's output [T, B, H] and the final state; both are reused by the next call.
   */
  forward(
    x: Float32Array,
    options: RecurrentForwardOptions,
  ): { output: Float32Array; state: RecurrentState } {
    const shape = this.makeShape(options);
    const { T, B, H, L } = shape;
    this.checkState(options.state, B, 'state');
    const training = shape.training;
    if (training) this.dropoutSeed = (this.dropoutSeed + 1) % 2 ** 52;
    this.ws = reuse(this.ws, native.stackWorkspaceSize(shape));
    this.y = reuse(this.y, T * B * H);
    this.hT = reuse(this.hT, L * B * H);
    this.cT = this.cellName === 'lstm' ? reuse(this.cT, L * B * H) : null;
    const h0 = options.state?.h ?? null;
    const c0 = options.state?.c ?? null;
    const lengths = options.lengths ?? null;
    native.stackForward({
      shape,
      params: this.weights.data,
      x,
      lengths,
      h0,
      c0,
      y: this.y,
      hT: this.hT,
      cT: this.cT,
      ws: this.ws,
    });
    this.shape = shape;
    this.x = x;
    this.lengths = lengths;
    this.h0 = h0;
    this.c0 = c0;
    const state: RecurrentState = this.cT ? { h: this.hT, c: this.cT } : { h: this.hT };
    return { output: this.y, state };
  }

  /**
   * Backpropagates through the last training forward: dy [T, B, H] and optionally the final
   * state's gradient. Adds into weights.grad; returns dx [T, B, inputSize] and the initial state's
   * gradient (reused by the next call).
   */
  backward(
    dy: Float32Array,
    dState?: RecurrentState,
  ): { dx: Float32Array; dState: RecurrentState } {
    const shape = this.shape;
    if (!shape || !shape.training || !this.x || !this.ws) {
      throw new RangeError(`${this.describe()}.backward needs a forward with training: true first`);
    }
    const { T, B, I, H, L } = shape;
    this.checkState(dState, B, 'dState');
    this.dx = reuse(this.dx, T * B * I);
    this.dh0 = reuse(this.dh0, L * B * H);
    this.dc0 = this.cellName === 'lstm' ? reuse(this.dc0, L * B * H) : null;
    native.stackBackward({
      shape,
      params: this.weights.data,
      x: this.x,
      lengths: this.lengths,
      h0: this.h0,
      c0: this.c0,
      ws: this.ws,
      dy,
      dhT: dState?.h ?? null,
      dcT: dState?.c ?? null,
      dx: this.dx,
      dh0: this.dh0,
      dc0: this.dc0,
      dparams: this.weights.grad,
    });
    const d: RecurrentState = this.dc0 ? { h: this.dh0, c: this.dc0 } : { h: this.dh0 };
    return { dx: this.dx, dState: d };
  }

  /** PyTorch state-dict tensors (weight_ih_l{k}, ...), copies keyed by `prefix + name`. */
  toPyTorch(prefix = ''): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (let l = 0; l < this.numLayers; l++) {
      for (const [name, shape, view] of this.pytorchTensors(l)) {
        out[`${prefix}${name}`] = { shape, data: view.slice() };
      }
    }
    return out;
  }

  /** The PyTorch state-dict names of the stack's tensors (weight_ih_l0, ...), after `prefix`. */
  pytorchNames(prefix = ''): string[] {
    const names: string[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      for (const [name] of this.pytorchTensors(l)) names.push(`${prefix}${name}`);
    }
    return names;
  }

  /**
   * Copies weights from PyTorch state-dict tensors named `prefix + weight_ih_l{k}` etc. Every
   * tensor must be present with the exact shape; nothing is changed if any is missing or misshapen.
   */
  loadPyTorch(
    tensors: Record<string, { shape: readonly number[]; data: Float32Array }>,
    prefix = '',
  ): void {
    const copies: [Float32Array, Float32Array][] = [];
    for (let l = 0; l < this.numLayers; l++) {
      for (const [name, shape, view] of this.pytorchTensors(l)) {
        const t = tensors[`${prefix}${name}`];
        if (!t) throw new Error(`missing tensor '${prefix}${name}' (shape [${shape.join(', ')}])`);
        if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
          throw new Error(
            `tensor '${prefix}${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
          );
        }
        copies.push([view, t.data]);
      }
    }
    for (const [dst, src] of copies) dst.set(src);
  }

  /**
   * Layer l's weights in ONNX's layout and gate order: W [1, G*H, I], R [1, G*H, H],
   * B [1, 2*G*H] (input biases then recurrent biases).
   */
  onnxWeights(l: number): { W: Float32Array; R: Float32Array; B: Float32Array } {
    const w = this.layerWeights(l);
    const B = new Float32Array(2 * this.gates * this.hiddenSize);
    B.set(this.onnxGateOrder(w.biasIh), 0);
    B.set(this.onnxGateOrder(w.biasHh), this.gates * this.hiddenSize);
    return { W: this.onnxGateOrder(w.weightIh), R: this.onnxGateOrder(w.weightHh), B };
  }

  /**
   * A copy of `src`, G gate blocks of rows (a weight matrix, a bias, one scale per row) in
   * rnnkit's gate order, with its blocks in ONNX's gate order.
   */
  onnxGateOrder(src: Float32Array): Float32Array {
    const order = ONNX_ORDER[this.cellName];
    const block = src.length / order.length;
    const dst = new Float32Array(src.length);
    order.forEach((from, to) =>
      dst.set(src.subarray(from * block, (from + 1) * block), to * block),
    );
    return dst;
  }

  private pytorchTensors(l: number): [string, number[], Float32Array][] {
    const w = this.layerWeights(l);
    const GH = this.gates * this.hiddenSize;
    const I = l === 0 ? this.inputSize : this.hiddenSize;
    return [
      [`weight_ih_l${l}`, [GH, I], w.weightIh],
      [`weight_hh_l${l}`, [GH, this.hiddenSize], w.weightHh],
      [`bias_ih_l${l}`, [GH], w.biasIh],
      [`bias_hh_l${l}`, [GH], w.biasHh],
    ];
  }

  private makeShape(o: RecurrentForwardOptions): StackShape {
    const T = checkInt('steps', o.steps, 1);
    const B = checkInt('batch', o.batch, 1);
    return {
      cell: this.cellName,
      T,
      B,
      I: this.inputSize,
      H: this.hiddenSize,
      L: this.numLayers,
      dropout: this.dropout,
      residual: this.residual,
      training: o.training ?? false,
      seed: this.dropoutSeed,
      precision: o.precision ?? 'float32',
    };
  }

  private checkState(state: RecurrentState | undefined, batch: number, what: string): void {
    if (!state) return;
    const n = this.stateSize(batch);
    const dims = `numLayers*batch*hiddenSize = ${this.numLayers}*${batch}*${this.hiddenSize} = ${n}`;
    if (!(state.h instanceof Float32Array) || state.h.length !== n) {
      throw new RangeError(
        `${what}.h must be a Float32Array of ${dims} floats, got ${describeArray(state.h)}`,
      );
    }
    if (this.cellName === 'lstm') {
      if (!(state.c instanceof Float32Array) || state.c.length !== n) {
        throw new RangeError(
          `${what}.c (LSTM cell state) must be a Float32Array of ${dims} floats, got ${describeArray(state.c)}`,
        );
      }
    } else if (state.c !== undefined) {
      throw new RangeError(
        `${what}.c is only for LSTM; this is a ${this.cell.toUpperCase()} stack`,
      );
    }
  }
}

function describeArray(a: unknown): string {
  if (a instanceof Float32Array) return `length ${a.length}`;
  return a === undefined ? 'undefined' : (a?.constructor?.name ?? typeof a);
}

export class RNN extends RecurrentStack {
  constructor(options: RecurrentOptions) {
    super('rnn', options);
  }
}

export class LSTM extends RecurrentStack {
  constructor(options: RecurrentOptions) {
    super('lstm', options);
  }
}

export class GRU extends RecurrentStack {
  constructor(options: RecurrentOptions) {
    super('gru', options);
  }
}
