// Scoring a translation model on held-out pairs: exact match and corpus BLEU of its translations.
import type { TextPair } from '../text/pairs';
import { bleuTokens, corpusBleu, type BleuScore } from '../train/bleu';
import { translate, type TranslateOptions, type Translator } from './translate';

export interface TranslationScore {
  /** Each pair's translation, in order. */
  translations: string[];
  /** Share of translations equal to their target, 0..1. */
  exactMatch: number;
  bleu: BleuScore;
  /** Pairs scored. */
  pairs: number;
  /** Time spent translating, s. */
  seconds: number;
}

/**
 * Translates every pair's source and compares the results with the targets; `lowercase` compares
 * lowercased texts (for lowercased word vocabularies).
 */
export async function scoreTranslations(
  model: Translator,
  pairs: readonly TextPair[],
  options: TranslateOptions & { lowercase?: boolean } = {},
): Promise<TranslationScore> {
  const { lowercase = false, ...translateOptions } = options;
  const normalise = (text: string) => (lowercase ? text.toLowerCase() : text);
  const started = performance.now();
  const got = await translate(
    model,
    pairs.map((p) => p.source),
    translateOptions,
  );
  const seconds = (performance.now() - started) / 1000;
  const exact = got.filter((t, i) => normalise(t.text) === normalise(pairs[i].target)).length;
  return {
    translations: got.map((t) => t.text),
    exactMatch: pairs.length > 0 ? exact / pairs.length : 0,
    bleu: corpusBleu(
      got.map((t) => bleuTokens(normalise(t.text))),
      pairs.map((p) => bleuTokens(normalise(p.target))),
    ),
    pairs: pairs.length,
    seconds,
  };
}
