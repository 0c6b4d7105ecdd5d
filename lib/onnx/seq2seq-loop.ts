// Beam search over the two onnxruntime sessions of an exported Seq2Seq: the encoder once per
// batch, then the decoder step once per output token, with the addon's BeamSearch choosing the
// hypotheses (the search native seq2seqBeamSearch runs), so both backends decode alike.
import * as ort from 'onnxruntime-node';

import type { Seq2SeqSpec } from '../models/seq2seq';
import { native, type BeamSearchConfig, type BeamSearchResult } from '../core/native';
import { SEQ2SEQ_NAMES as N, seq2seqSizes } from './seq2seq-format';

type Rows = Float32Array | Uint8Array;

/**
 * dst[g, j] = src[g, rows[j]] for `groups` groups of rows `width` wide: src [groups, n, width] ->
 * [groups, rows.length, width] (n is src.length / (groups * width)).
 */
function gatherRows<T extends Rows>(src: T, groups: number, width: number, rows: Int32Array): T {
  const n = src.length / (groups * width);
  const m = rows.length;
  const dst = new (src.constructor as new (length: number) => T)(groups * m * width);
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < m; j++) {
      const from = (g * n + rows[j]) * width;
      dst.set(src.subarray(from, from + width), (g * m + j) * width);
    }
  }
  return dst;
}

const isIdentity = (rows: Int32Array) => rows.every((r, i) => r === i);

export class OnnxSeq2SeqLoop {
  constructor(
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    private readonly spec: Seq2SeqSpec,
  ) {}

  /**
   * Decodes the source batch `source` [S, B] (padded, time-major) of `lengths` [B] as
   * native.seq2seqBeamSearch does with `config`, and returns its result.
   */
  async beamSearch(
    source: Int32Array,
    lengths: Int32Array,
    config: BeamSearchConfig,
  ): Promise<BeamSearchResult> {
    const { S, B, beam: K } = config;
    const { decoderLayers: L, hiddenSize: H, targetVocab: V } = this.spec;
    const { He, K: Kk } = seq2seqSizes(this.spec);
    const int64 = (a: Int32Array, dims: number[]) =>
      new ort.Tensor('int64', BigInt64Array.from(a, BigInt), dims);
    const enc = await this.encoder.run({
      [N.source]: int64(source, [S, B]),
      [N.sourceLengths]: int64(lengths, [B]),
    });
    const data = <T extends Rows>(name: string) => enc[name].data as T;
    const search = new native.BeamSearch({ ...config, V });
    const R = search.rows;
    // Row r = b * K + k holds hypothesis k of source b: repeat each source's outputs K times.
    const bySource = Int32Array.from({ length: R }, (_, r) => Math.floor(r / K));
    const sources = {
      [N.memory]: new ort.Tensor('float32', gatherRows(data(N.memory), 1, S * He, bySource), [
        R,
        S,
        He,
      ]),
      [N.keys]: new ort.Tensor('float32', gatherRows(data(N.keys), 1, S * Kk, bySource), [
        R,
        S,
        Kk,
      ]),
      [N.mask]: new ort.Tensor('bool', gatherRows(data(N.mask), 1, S, bySource), [R, S]),
    };
    // The recurrent state (and the attentional state fed to the next step) of every row.
    const stateShapes: [string, string, number, number[]][] = [[N.h0, N.hT, L, [L, R, H]]];
    if (this.spec.cell === 'lstm') stateShapes.push([N.c0, N.cT, L, [L, R, H]]);
    if (this.spec.inputFeeding) stateShapes.push([N.feed0, N.feedT, 1, [1, R, H]]);
    let state: Record<string, Float32Array> = {};
    for (const [name, , groups] of stateShapes) {
      state[name] =
        name === N.feed0
          ? new Float32Array(R * H)
          : gatherRows(data<Float32Array>(name), groups, H, bySource);
    }

    const tokens = new Int32Array(R);
    const parents = new Int32Array(R);
    let out: ort.InferenceSession.ReturnType | null = null;
    while (search.next(tokens, parents)) {
      if (out) {
        // Each row continues its parent's hypothesis: it takes the parent's new state.
        const previous = out;
        const keep = isIdentity(parents);
        state = Object.fromEntries(
          stateShapes.map(([name, next, groups]) => {
            const s = previous[next].data as Float32Array;
            return [name, keep ? s : gatherRows(s, groups, H, parents)];
          }),
        );
      }
      const feeds: Record<string, ort.Tensor> = { [N.tokens]: int64(tokens, [1, R]), ...sources };
      for (const [name, , , dims] of stateShapes) {
        feeds[name] = new ort.Tensor('float32', state[name], dims);
      }
      out = await this.decoder.run(feeds);
      search.step(out[N.logits].data as Float32Array, out[N.attention].data as Float32Array);
    }
    return search.results();
  }
}
