import { native } from '../core/native';
import { checkInt, checkNumber, reuse } from './parameter';

export interface CrossEntropyOptions {
  /** Targets equal to this count for nothing (padding); default -1. */
  ignoreIndex?: number;
  /** Mixes the one-hot target with the uniform distribution (0..1, default 0). */
  labelSmoothing?: number;
}

/**
 * Softmax cross-entropy over rows of logits [N, V], fused with its gradient. forward returns the
 * mean loss over counted rows; backward writes d(mean loss)/d(logits) into a reused buffer.
 */
export class SoftmaxCrossEntropy {
  readonly ignoreIndex: number;
  readonly labelSmoothing: number;
  private lse: Float32Array | null = null;
  private dlogits: Float32Array | null = null;
  private last: { logits: Float32Array; targets: Int32Array; V: number; count: number } | null =
    null;

  constructor(options: CrossEntropyOptions = {}) {
    this.ignoreIndex = checkInt('ignoreIndex', options.ignoreIndex ?? -1, -(2 ** 31));
    this.labelSmoothing = checkNumber('labelSmoothing', options.labelSmoothing ?? 0, 0, 1);
  }

  /** Returns { loss: mean over counted rows (0 when none), count, sum }. */
  forward(
    logits: Float32Array,
    targets: Int32Array,
    vocabSize: number,
  ): { loss: number; sum: number; count: number } {
    const N = targets.length;
    this.lse = reuse(this.lse, N);
    const { sum, count } = native.softmaxXentForward(
      { N, V: vocabSize },
      logits,
      targets,
      this.ignoreIndex,
      this.labelSmoothing,
      this.lse,
    );
    this.last = { logits, targets, V: vocabSize, count };
    return { loss: count > 0 ? sum / count : 0, sum, count };
  }

  /** Gradient of the mean loss (times `scale`) with respect to the last forward's logits. */
  backward(scale = 1): Float32Array {
    const last = this.last;
    if (!last || !this.lse) throw new Error('SoftmaxCrossEntropy.backward called before forward');
    const N = last.targets.length;
    this.dlogits = reuse(this.dlogits, N * last.V);
    native.softmaxXentBackward(
      { N, V: last.V },
      last.logits,
      last.targets,
      this.ignoreIndex,
      this.labelSmoothing,
      this.lse,
      last.count > 0 ? scale / last.count : 0,
      this.dlogits,
    );
    return this.dlogits;
  }
}
