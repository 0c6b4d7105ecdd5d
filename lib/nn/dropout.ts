import { native } from '../core/native';
import { checkNumber, reuse } from './parameter';

/**
 * Dropout in training: each element is kept with probability 1 - p and scaled by 1 / (1 - p).
 * The mask is a pure function of a per-call seed, so backward regenerates it instead of storing it.
 */
export class Dropout {
  readonly p: number;
  private seed: number;
  private lastSeed = -1;
  private y: Float32Array | null = null;
  private dx: Float32Array | null = null;

  constructor(p: number, seed: number) {
    this.p = checkNumber('dropout', p, 0, 0.99);
    this.seed = seed;
  }

  /** Returns x itself when p is 0 or not training; otherwise a buffer reused by the next call. */
  forward(x: Float32Array, training: boolean): Float32Array {
    if (!training || this.p === 0) {
      this.lastSeed = -1;
      return x;
    }
    this.seed = (this.seed + 1) % 2 ** 52;
    this.lastSeed = this.seed;
    this.y = reuse(this.y, x.length);
    native.dropout(x, this.p, this.seed, this.y);
    return this.y;
  }

  /** The gradient through the last forward's mask (dy itself when it dropped nothing). */
  backward(dy: Float32Array): Float32Array {
    if (this.lastSeed < 0) return dy;
    this.dx = reuse(this.dx, dy.length);
    native.dropout(dy, this.p, this.lastSeed, this.dx);
    return this.dx;
  }
}
