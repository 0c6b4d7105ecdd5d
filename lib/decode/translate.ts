// Text-level decoding: tokenizes sources, decodes them in length-sorted batches with beam search
// (beam 1: greedy; native kernels or onnxruntime) and turns the tokens back into text, with each
// output token's attention over the source tokens.
import { samplerSettings, type SamplerSettings, type SamplingOptions } from './options';
import type { Seq2SeqSpec } from '../models/seq2seq';
import type { BeamSearchConfig, BeamSearchResult } from '../core/native';
import { checkInt, checkNumber } from '../nn/parameter';
import type { Tokenizer, UnknownPolicy } from '../text';
import { sourceBatch, type SourceBatch } from '../text/batch';

/**
 * With beam 1, `temperature` > 0 samples each output token instead of taking the most likely one,
 * with the language model's sampler options (topK, topP, repetitionPenalty, noRepeatNgramSize,
 * seed); the default temperature here is 0.
 */
export interface TranslateOptions extends Pick<
  SamplingOptions,
  'temperature' | 'topK' | 'topP' | 'repetitionPenalty' | 'noRepeatNgramSize' | 'seed'
> {
  /** Hypotheses kept per source (default 1: greedy); at most the target vocabulary. */
  beam?: number;
  /** Hypotheses returned per source, best first (default 1, at most beam). */
  nBest?: number;
  /** Output tokens at most, the end token included (default 2 * source length + 10). */
  maxLength?: number;
  /** GNMT length penalty alpha (default 0.6 with beam > 1, else 0). */
  lengthPenalty?: number;
  /** Sources decoded per native call (default 64). */
  batchSize?: number;
  /** Longest source accepted, in tokens (default 1000). */
  maxSourceLength?: number;
  /** Source text outside the vocabulary: 'error' (default) or 'map' to the unknown token. */
  unknown?: UnknownPolicy;
}

export interface Hypothesis {
  text: string;
  /** The output tokens as text, one per output token. */
  tokens: string[];
  /** Log-probability divided by the length penalty. */
  score: number;
  /** attention[i][j]: weight of source token j when output token i was produced. */
  attention: Float32Array[];
}

export interface Translation {
  source: string;
  sourceTokens: string[];
  /** The best hypothesis's text. */
  text: string;
  hypotheses: Hypothesis[];
}

/** A beam search's settings for one batch (beam 1: greedy, or sampling with temperature > 0). */
export type BeamOptions = {
  beam: number;
  nBest: number;
  maxLength: number;
  lengthPenalty: number;
} & Partial<Omit<SamplerSettings, 'maxTokens'>>;

/**
 * A sequence-to-sequence model, native (Seq2Seq) or ONNX (OnnxSeq2Seq). `translate` (the function
 * below, which the method calls) needs of it its spec, its vocabularies and a beam search over a
 * padded source batch with the token-level results of native.seq2seqBeamSearch.
 */
export interface Translator {
  readonly spec: Seq2SeqSpec;
  readonly sourceTokenizer: Tokenizer | null;
  readonly targetTokenizer: Tokenizer | null;
  beamSearch(batch: SourceBatch, options: BeamOptions): Promise<BeamSearchResult>;
  translate(sources: readonly string[], options?: TranslateOptions): Promise<Translation[]>;
}

/** The native beam search's config for a batch of a model of this spec. */
export function beamSearchConfig(
  spec: Seq2SeqSpec,
  batch: SourceBatch,
  o: BeamOptions,
): BeamSearchConfig {
  return {
    S: batch.sourceSteps,
    B: batch.batch,
    beam: o.beam,
    nBest: o.nBest,
    maxLength: checkInt('maxLength', o.maxLength, 1, 65536),
    lengthPenalty: checkNumber('lengthPenalty', o.lengthPenalty, 0, 100),
    bos: spec.bos,
    eos: spec.eos,
    temperature: o.temperature ?? 0,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    noRepeatNgramSize: o.noRepeatNgramSize ?? 0,
    seed: o.seed ?? 0,
  };
}

/** Translates every source; see TranslateOptions. */
export async function translate(
  model: Translator,
  sources: readonly string[],
  options: TranslateOptions = {},
): Promise<Translation[]> {
  const { sourceTokenizer: src, targetTokenizer: tgt } = model;
  if (!src || !tgt) throw new Error('translate: the model has no source and target tokenizers');
  if (!Array.isArray(sources))
    throw new TypeError('translate: sources must be an array of strings');
  const beam = checkInt('beam', options.beam ?? 1, 1);
  if (beam > model.spec.targetVocab) {
    throw new RangeError(
      `beam must be at most the target vocabulary size ${model.spec.targetVocab}, got ${beam}`,
    );
  }
  const nBest = checkInt('nBest', options.nBest ?? 1, 1, beam);
  const sampler = samplerSettings(
    { ...options, temperature: options.temperature ?? 0, seed: options.seed ?? 0 },
    model.spec.targetVocab,
  );
  if (sampler.temperature > 0 && beam !== 1) {
    throw new RangeError(`sampling (temperature > 0) decodes with beam 1, got beam ${beam}`);
  }
  const lengthPenalty = checkNumber(
    'lengthPenalty',
    options.lengthPenalty ?? (beam > 1 ? 0.6 : 0),
    0,
    100,
  );
  const batchSize = checkInt('batchSize', options.batchSize ?? 64, 1, 4096);
  const maxSource = checkInt('maxSourceLength', options.maxSourceLength ?? 1000, 1);
  const maxLength =
    options.maxLength === undefined
      ? undefined
      : checkInt('maxLength', options.maxLength, 1, 65536);
  const ids = sources.map((s, i) => {
    if (typeof s !== 'string') throw new TypeError(`translate: sources[${i}] is not a string`);
    let t: Int32Array;
    try {
      t = src.encode(s, { unknown: options.unknown ?? 'error' });
    } catch (error) {
      throw new RangeError(`translate: sources[${i}]: ${(error as Error).message}`);
    }
    if (t.length === 0) throw new RangeError(`translate: sources[${i}] is empty`);
    if (t.length > maxSource) {
      throw new RangeError(
        `translate: sources[${i}] has ${t.length} tokens, more than maxSourceLength ${maxSource}`,
      );
    }
    return t;
  });
  const piece = (tok: { decode(ids: number[]): string }, id: number) => tok.decode([id]);
  const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length);
  const out: Translation[] = new Array<Translation>(sources.length);
  for (let at = 0; at < order.length; at += batchSize) {
    const rows = order.slice(at, at + batchSize);
    const batch = sourceBatch(rows.map((i) => ids[i]));
    const S = batch.sourceSteps;
    const T = maxLength ?? 2 * S + 10;
    const r = await model.beamSearch(batch, {
      ...sampler,
      beam,
      nBest,
      maxLength: T,
      lengthPenalty,
    });
    rows.forEach((i, b) => {
      const n = ids[i].length;
      const hypotheses: Hypothesis[] = [];
      for (let k = 0; k < nBest; k++) {
        const o = b * nBest + k;
        const toks = Array.from(r.tokens.subarray(o * T, o * T + r.lengths[o]));
        hypotheses.push({
          text: tgt.decode(toks),
          tokens: toks.map((id) => piece(tgt, id)),
          score: r.scores[o],
          attention: toks.map((_, t) => r.align.slice((o * T + t) * S, (o * T + t) * S + n)),
        });
      }
      out[i] = {
        source: sources[i],
        sourceTokens: Array.from(ids[i], (id) => piece(src, id)),
        text: hypotheses[0].text,
        hypotheses,
      };
    });
  }
  return out;
}
