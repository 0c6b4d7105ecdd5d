// Small untrained models the serving and command-line tests share, and native search configs.
import { CharTokenizer, Seq2Seq } from '../../lib/index';
import type { BeamSearchConfig } from '../../lib/core/native';

/** A character-level translator from 'abcdef' to 'uvwxyz' (random weights, seed 4). */
export function tinySeq2Seq(): Seq2Seq {
  return new Seq2Seq({
    sourceTokenizer: CharTokenizer.fromText('abcdef'),
    targetTokenizer: CharTokenizer.fromText('uvwxyz', { specials: ['<pad>', '<bos>', '<eos>'] }),
    hiddenSize: 12,
    embeddingSize: 6,
    seed: 4,
  });
}

/**
 * A native search config: greedy over one source of S positions, up to 4 tokens, no sampling,
 * with `over` in place of any of these.
 */
export function searchConfig(
  over: Partial<BeamSearchConfig> & Pick<BeamSearchConfig, 'S' | 'bos' | 'eos'>,
): BeamSearchConfig {
  return {
    B: 1,
    beam: 1,
    nBest: 1,
    maxLength: 4,
    lengthPenalty: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    noRepeatNgramSize: 0,
    seed: 0,
    ...over,
  };
}
