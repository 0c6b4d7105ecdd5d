import { native } from '../core/native';
import { Random } from '../core/random';
import { Module, Parameter, checkInt, reuse } from './parameter';

/** Token embedding: ids [N] -> vectors [N, embeddingSize]. Weight [vocabSize, embeddingSize]. */
export class Embedding extends Module {
  readonly weight: Parameter;
  private ids: Int32Array | null = null;
  private out: Float32Array | null = null;

  constructor(
    readonly vocabSize: number,
    readonly embeddingSize: number,
    rng: Random = new Random(),
  ) {
    super();
    checkInt('vocabSize', vocabSize, 1);
    checkInt('embeddingSize', embeddingSize, 1);
    this.weight = new Parameter('weight', [vocabSize, embeddingSize]);
    rng.fillNormal(this.weight.data, 1);
  }

  parameters(): Parameter[] {
    return [this.weight];
  }

  describe(): string {
    return `Embedding(${this.vocabSize}, ${this.embeddingSize})`;
  }

  /** The returned array is reused by the next call. */
  forward(ids: Int32Array): Float32Array {
    const shape = { V: this.vocabSize, E: this.embeddingSize };
    this.out = reuse(this.out, ids.length * this.embeddingSize);
    native.embeddingForward(shape, this.weight.data, ids, this.out);
    this.ids = ids;
    return this.out;
  }

  /** Adds the gradient of the last forward's output into weight.grad. */
  backward(dout: Float32Array): void {
    if (!this.ids) throw new Error('Embedding.backward called before forward');
    native.embeddingBackward(
      { V: this.vocabSize, E: this.embeddingSize },
      this.ids,
      dout,
      this.weight.grad,
    );
  }
}
