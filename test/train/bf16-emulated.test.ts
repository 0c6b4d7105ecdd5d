// Mixed-precision (bf16) training on the emulated kernel (RNNKIT_BF16=emulate, set before the
// first product picks the kernel): the products are those of the operands rounded to bfloat16
// (against float32 products of pre-rounded operands and a float64 reference stack), and a 300-step
// bf16 run ends within 0.02 nats per character of the same float32 run on held-out text.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it, vi } from 'vitest';

import { CharTokenizer, info, LanguageModel, Linear, Random } from '../../lib/index';
import { roundToBfloat16, toBfloat16Bits } from '../../lib/nn/quantize';
import {
  CELLS,
  expectClose,
  layersOf,
  makeStack,
  randn,
  referenceStack,
} from '../helpers/reference';

vi.hoisted(() => {
  process.env.RNNKIT_BF16 = 'emulate';
});

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** `v` rounded to float32, then to the nearest bfloat16. */
function bf16(v: number): number {
  u32[0] = toBfloat16Bits(v) << 16;
  return f32[0];
}
function rounded(a: Float32Array): Float32Array {
  const r = a.slice();
  roundToBfloat16(r);
  return r;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('bf16 training products, emulated', () => {
  it('runs on the emulated kernel where RNNKIT_BF16=emulate', () => {
    expect(info().bf16.products).toBe('emulated');
  });

  it('Linear: forward and backward are the float32 products of the rounded operands', () => {
    const [N, I, O] = [37, 45, 29];
    const make = () => new Linear(I, O, { rng: new Random(3) });
    const bf = make();
    const ref = make();
    roundToBfloat16(ref.weight.data);
    const x = randn(N * I, 4);
    const dy = randn(N * O, 5);
    const y = bf.forward(x, 'bf16').slice();
    expect(y).toEqual(ref.forward(rounded(x)));
    // The rounding matters: the float32 product of the unrounded operands differs.
    expect(maxDiff(y, make().forward(x))).toBeGreaterThan(1e-3);
    const dx = bf.backward(dy)!.slice();
    // dx = dy W and dW = dy^T x, each of rounded operands (ref's x is already rounded).
    expect(dx).toEqual(ref.backward(rounded(dy))!);
    expect(bf.weight.grad).toEqual(ref.weight.grad);
    // The bias gradient sums the unrounded dy.
    const db = new Float64Array(O);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) db[o] += dy[n * O + o];
    expectClose(bf.bias!.grad, db, 1e-5, 'db');
  });

  for (const cell of CELLS) {
    it(`${cell}: forward matches a float64 stack whose products read bf16 operands`, () => {
      const [T, B, I, H, L] = [6, 3, 10, 16, 2];
      const stack = makeStack(cell, { inputSize: I, hiddenSize: H, numLayers: L, seed: 7 });
      const x = randn(T * B * I, 8);
      const layers = layersOf(stack);
      const { output, state } = stack.forward(x, { steps: T, batch: B, precision: 'bf16' });
      const want = referenceStack(cell, layers, I, H, x, T, B, { round: bf16 });
      // Float32 rounding apart (a state rounded to bf16 from float32 here, from float64 there, may
      // rarely land on the other side of a tie); the products of unrounded operands lie more than
      // ten times further away.
      expectClose(output, want.y, 1e-5, `${cell} y`);
      expectClose(state.h, want.hT, 1e-5, `${cell} hT`);
      const exact = referenceStack(cell, layers, I, H, x, T, B);
      expect(maxDiff(output, exact.y)).toBeGreaterThan(2e-4);
    });
  }

  it('lstm: backward is within bf16 rounding of the float32 gradients', () => {
    const [T, B, I, H] = [8, 4, 12, 20];
    const run = (precision: 'float32' | 'bf16') => {
      const stack = makeStack('lstm', { inputSize: I, hiddenSize: H, numLayers: 2, seed: 9 });
      stack.forward(randn(T * B * I, 10), { steps: T, batch: B, training: true, precision });
      const { dx } = stack.backward(randn(T * B * H, 11));
      return { dx: dx.slice(), dw: stack.weights.grad.slice() };
    };
    const f = run('float32');
    const b = run('bf16');
    const scale = Math.max(...f.dw.map(Math.abs));
    // Relative to the largest gradient: 8 significant bits per operand.
    expect(maxDiff(b.dw, f.dw) / scale).toBeLessThan(0.02);
    expect(maxDiff(b.dw, f.dw) / scale).toBeGreaterThan(1e-5);
    expect(maxDiff(b.dx, f.dx) / Math.max(...f.dx.map(Math.abs))).toBeLessThan(0.02);
  });

  it('a 300-step bf16 run ends within 0.02 nats/char of the float32 run on held-out text', async () => {
    const corpus = fs.readFileSync(
      path.join(__dirname, '..', '..', 'data', 'tinyshakespeare.txt'),
      'utf8',
    );
    const train = corpus.slice(0, 200_000);
    const heldOut = corpus.slice(200_000, 220_000);
    const tokenizer = CharTokenizer.fromText(corpus);
    const loss = async (precision: 'float32' | 'bf16') => {
      const model = new LanguageModel({
        tokenizer,
        cell: 'lstm',
        hiddenSize: 128,
        embeddingSize: 32,
        seed: 3,
      });
      await model.fit(train, {
        steps: 300,
        batchSize: 16,
        seqLength: 32,
        learningRate: 3e-3,
        validationSplit: 0,
        seed: 3,
        precision,
      });
      return model.evaluate(heldOut).loss;
    };
    const float32 = await loss('float32');
    const bf16Loss = await loss('bf16');
    console.log(
      `held-out loss after 300 steps: float32 ${float32.toFixed(4)}, bf16 (emulated) ` +
        `${bf16Loss.toFixed(4)} nats/char, difference ${(bf16Loss - float32).toFixed(4)}`,
    );
    // Trained: well below the uniform guess over the vocabulary (ln 65 = 4.17).
    expect(float32).toBeLessThan(2.6);
    expect(Math.abs(bf16Loss - float32)).toBeLessThanOrEqual(0.02);
  });
});
