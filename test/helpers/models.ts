// Small untrained models the serving and command-line tests share.
import { CharTokenizer, Seq2Seq } from '../../lib/index';

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
