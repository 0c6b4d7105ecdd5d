import { native, type Precision } from '../core/native';
import { Random } from '../core/random';
import { checkInt } from '../core/validate';
import { Module, Parameter, reuse } from './parameter';

/**
 * y = x W^T + b, x [N, inputSize], W [outputSize, inputSize] (PyTorch's nn.Linear layout).
 * `weight` may be another module's parameter (weight tying): gradients then add into its grad.
 */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  private x: Float32Array | null = null;
  private n = 0;
  private precision: Precision = 'float32';
  private y: Float32Array | null = null;
  private dx: Float32Array | null = null;

  constructor(
    readonly inputSize: number,
    readonly outputSize: number,
    options: { bias?: boolean; rng?: Random; weight?: Parameter } = {},
  ) {
    super();
    checkInt('inputSize', inputSize, 1);
    checkInt('outputSize', outputSize, 1);
    const rng = options.rng ?? new Random();
    const bound = 1 / Math.sqrt(inputSize);
    if (options.weight) {
      const [rows, cols] = options.weight.shape;
      if (rows !== outputSize || cols !== inputSize) {
        throw new RangeError(
          `a shared Linear weight must be [${outputSize}, ${inputSize}], got [${options.weight.shape.join(', ')}]`,
        );
      }
      this.weight = options.weight;
    } else {
      this.weight = new Parameter('weight', [outputSize, inputSize]);
      rng.fillUniform(this.weight.data, -bound, bound);
    }
    this.bias = options.bias === false ? null : new Parameter('bias', [outputSize]);
    if (this.bias) rng.fillUniform(this.bias.data, -bound, bound);
  }

  parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  describe(): string {
    return `Linear(${this.inputSize} -> ${this.outputSize}${this.bias ? '' : ', no bias'})`;
  }

  private shape(n: number, precision: Precision) {
    return { N: n, I: this.inputSize, O: this.outputSize, precision };
  }

  /**
   * x holds N rows of inputSize; the returned [N, outputSize] array is reused by the next call.
   * `precision` is that of the product, here and in the backward that follows (default 'float32').
   */
  forward(x: Float32Array, precision: Precision = 'float32'): Float32Array {
    const n = this.rows(x);
    this.y = reuse(this.y, n * this.outputSize);
    native.linearForward(
      this.shape(n, precision),
      x,
      this.weight.data,
      this.bias?.data ?? null,
      this.y,
    );
    this.x = x;
    this.n = n;
    this.precision = precision;
    return this.y;
  }

  /** Adds weight/bias gradients; returns dx (reused by the next call), or null if not wanted. */
  backward(dy: Float32Array, wantDx = true): Float32Array | null {
    if (!this.x) throw new Error('Linear.backward called before forward');
    const dx = wantDx ? (this.dx = reuse(this.dx, this.n * this.inputSize)) : null;
    native.linearBackward(
      this.shape(this.n, this.precision),
      this.x,
      this.weight.data,
      dy,
      dx,
      this.weight.grad,
      this.bias?.grad ?? null,
    );
    return dx;
  }

  private rows(x: Float32Array): number {
    if (x.length === 0 || x.length % this.inputSize !== 0) {
      throw new RangeError(
        `Linear.forward: input length ${x.length} is not a positive multiple of inputSize ${this.inputSize}`,
      );
    }
    return x.length / this.inputSize;
  }
}
