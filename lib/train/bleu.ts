// Corpus BLEU (Papineni et al. 2002) as sacreBLEU computes it by default: modified n-gram
// precisions for n = 1..4 summed over the whole corpus, their geometric mean, times the brevity
// penalty exp(1 - r/c) when the candidates are shorter than the references. One reference per
// sentence; the caller tokenizes (see `bleuTokens`).

export interface BleuScore {
  /** 0..100. */
  bleu: number;
  /** Modified n-gram precisions, n = 1..4, 0..1. */
  precisions: number[];
  brevityPenalty: number;
  /** Candidate and reference token counts. */
  hypothesisLength: number;
  referenceLength: number;
}

/** Words and punctuation marks as separate tokens (a simple stand-in for sacreBLEU's 13a). */
export function bleuTokens(text: string): string[] {
  return (
    text.match(/[\p{L}\p{M}\p{N}]+(?:['\u2019][\p{L}\p{M}\p{N}]+)*|[^\s\p{L}\p{M}\p{N}]/gu) ?? []
  );
}

function ngrams(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0000');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Corpus BLEU-4 of tokenized candidates against one tokenized reference each. */
export function corpusBleu(
  hypotheses: readonly (readonly string[])[],
  references: readonly (readonly string[])[],
): BleuScore {
  if (hypotheses.length !== references.length) {
    throw new RangeError(
      `corpusBleu: ${hypotheses.length} hypotheses but ${references.length} references`,
    );
  }
  const matches = [0, 0, 0, 0];
  const totals = [0, 0, 0, 0];
  let c = 0;
  let r = 0;
  hypotheses.forEach((hyp, i) => {
    const ref = references[i];
    c += hyp.length;
    r += ref.length;
    for (let n = 1; n <= 4; n++) {
      const refCounts = ngrams(ref, n);
      for (const [gram, count] of ngrams(hyp, n)) {
        matches[n - 1] += Math.min(count, refCounts.get(gram) ?? 0);
      }
      totals[n - 1] += Math.max(0, hyp.length - n + 1);
    }
  });
  const precisions = matches.map((m, i) => (totals[i] > 0 ? m / totals[i] : 0));
  const brevityPenalty = c === 0 ? 0 : c < r ? Math.exp(1 - r / c) : 1;
  const logMean = precisions.some((p) => p === 0)
    ? -Infinity
    : precisions.reduce((s, p) => s + Math.log(p), 0) / 4;
  return {
    bleu: 100 * brevityPenalty * Math.exp(logMean),
    precisions,
    brevityPenalty,
    hypothesisLength: c,
    referenceLength: r,
  };
}
