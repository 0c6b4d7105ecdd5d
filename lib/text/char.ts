import {
  type CharTokenizerJSON,
  type Piece,
  type TokenizerOptions,
  VocabularyTokenizer,
} from './tokenizer';

// Callers pass one non-empty character, so codePointAt(0) is always defined.
const codePoint = (char: string): number => char.codePointAt(0) ?? 0;

function codePointLabel(char: string): string {
  return `U+${codePoint(char).toString(16).toUpperCase().padStart(4, '0')}`;
}

function checkCharToken(token: string): string | undefined {
  const codePoints = [...token].length;
  return codePoints === 1 ? undefined : `it has ${codePoints} code points, expected 1`;
}

/**
 * Character-level tokenizer. One token per Unicode code point (an emoji outside the BMP is one
 * token, not two surrogate halves), ids in code point order after the specials, then `<unk>`.
 * Tiny Shakespeare's 65 distinct characters give `size === 66`.
 */
export class CharTokenizer extends VocabularyTokenizer {
  declare readonly kind: 'char';

  constructor(tokens: readonly string[], options: TokenizerOptions = {}) {
    super('char', tokens, options.specials ?? [], checkCharToken);
  }

  static fromText(text: string, options: TokenizerOptions = {}): CharTokenizer {
    if (typeof text !== 'string' || text.length === 0) {
      throw new Error('CharTokenizer.fromText: cannot build a vocabulary from empty text');
    }
    // Compare code points, not strings: string order is UTF-16 order, which puts astral
    // characters (surrogates 0xD800-0xDFFF) before U+E000-U+FFFF.
    const chars = [...new Set(text)].sort((a, b) => codePoint(a) - codePoint(b));
    return new CharTokenizer(chars, options);
  }

  protected *pieces(text: string): Iterable<Piece> {
    let index = 0;
    for (const char of text) {
      yield { text: char, index };
      index += char.length;
    }
  }

  protected describe(char: string): string {
    return `character ${JSON.stringify(char)} (${codePointLabel(char)})`;
  }

  toJSON(): CharTokenizerJSON {
    return { kind: 'char', version: 1, specials: [...this.specials], tokens: [...this.tokens] };
  }
}
