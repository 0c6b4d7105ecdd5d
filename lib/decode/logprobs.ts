// Token log-probabilities under a language model: each token of a sequence given the ones before
// it, and the most likely alternatives at each position, from the model's logits (softmax at
// temperature 1, before any sampling setting). The serving engine scores a completion this way
// after generating it, on either backend (the network here, or onnxruntime in lib/onnx/rounds.ts).
import type { LmWeights } from '../core/native';
import { checkInt } from '../core/validate';
import { LanguageModelNetwork } from '../models/language-model';

/** Most alternatives a position reports. */
export const MAX_TOP_LOGPROBS = 20;

/**
 * For a sequence of T tokens, the T - 1 positions after the first: `logprobs[i]` is
 * log p(tokens[i + 1] | tokens[0..i]); `top` and `topLogprobs` hold, per position, the `k` most
 * likely tokens and their log-probabilities, most likely first ([T - 1, k]).
 */
export interface TokenScores {
  k: number;
  logprobs: Float32Array;
  top: Int32Array;
  topLogprobs: Float32Array;
}

/** Anything that scores token sequences (the serving engine's backends). */
export interface TokenScorer {
  score(tokens: Int32Array, k: number): Promise<TokenScores>;
}

/** Checks a sequence to score and the number of alternatives; throws RangeError. */
export function checkScoreInput(tokens: Int32Array, k: number, vocabSize: number): void {
  if (tokens.length < 2) throw new RangeError('scoring needs at least two tokens');
  checkInt('k', k, 0, Math.min(MAX_TOP_LOGPROBS, vocabSize));
}

/**
 * Scores `tokens` from logits [tokens.length - 1, V]: row i holds the logits after reading
 * tokens[0..i].
 */
export function scoresFromLogits(logits: Float32Array, V: number, tokens: Int32Array, k: number) {
  const n = tokens.length - 1;
  const out: TokenScores = {
    k,
    logprobs: new Float32Array(n),
    top: new Int32Array(n * k),
    topLogprobs: new Float32Array(n * k),
  };
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * V, (i + 1) * V);
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
    const norm = max + Math.log(sum);
    out.logprobs[i] = row[tokens[i + 1]] - norm;
    // k is small (at most MAX_TOP_LOGPROBS): keep the best k, in order, by insertion.
    const best: number[] = [];
    for (let v = 0; v < V && k > 0; v++) {
      if (best.length === k && row[v] <= row[best[k - 1]]) continue;
      if (best.length < k) best.push(v);
      else best[k - 1] = v;
      for (let j = best.length - 1; j > 0 && row[best[j - 1]] < row[best[j]]; j--) {
        [best[j - 1], best[j]] = [best[j], best[j - 1]];
      }
    }
    best.forEach((v, j) => {
      out.top[i * k + j] = v;
      out.topLogprobs[i * k + j] = row[v] - norm;
    });
  }
  return out;
}

/** Scores token sequences with the network whose weights the native token loop runs. */
export class NetworkScorer implements TokenScorer {
  private readonly network: LanguageModelNetwork;

  constructor(w: LmWeights) {
    const rnn = w.cell === 'rnn_tanh' || w.cell === 'rnn_relu';
    this.network = new LanguageModelNetwork({
      vocabSize: w.V,
      embeddingSize: w.E,
      hiddenSize: w.H,
      numLayers: w.L,
      residual: w.residual,
      cell: rnn ? 'rnn' : (w.cell as 'lstm' | 'gru'),
      nonlinearity: w.cell === 'rnn_relu' ? 'relu' : 'tanh',
      seed: 0,
    });
    // The loop's own arrays, shared (tied weights are one array under two names).
    const n = this.network;
    n.embedding.weight.adopt(w.embedding);
    n.rnn.weights.adopt(w.stack);
    n.decoder.weight.adopt(w.decoderWeight);
    n.decoder.bias?.adopt(w.decoderBias);
  }

  async score(tokens: Int32Array, k: number): Promise<TokenScores> {
    const V = this.network.spec.vocabSize;
    checkScoreInput(tokens, k, V);
    const steps = tokens.length - 1;
    const { logits } = this.network.forward({ ids: tokens.subarray(0, steps), steps, batch: 1 });
    return scoresFromLogits(logits, V, tokens, k);
  }
}
