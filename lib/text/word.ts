import {
  type Piece,
  type TokenizerOptions,
  VocabularyTokenizer,
  type WordTokenizerJSON,
} from './tokenizer';

/**
 * Word pieces, GPT-2 style: a word carries the single space before it (" king"), so ordinary prose
 * costs one token per word and decoding is plain concatenation. Alternatives, tried in order:
 *   1. an optional space, then a run of letters, combining marks and digits, with inner
 *      apostrophes kept ("don't", "o'er" are one word; a leading or trailing quote is not);
 *   2. an optional space, then one other non-space character (punctuation, symbols, emoji);
 *   3. one whitespace character (newline, tab, a space not followed by a word or a symbol).
 * Every character falls in one of the three, so the pieces concatenate back to the input.
 */
const PIECE = / ?[\p{L}\p{M}\p{N}]+(?:['\u2019][\p{L}\p{M}\p{N}]+)*| ?[^\s\p{L}\p{M}\p{N}]|\s/gu;

export interface WordTokenizerOptions extends TokenizerOptions {
  /** Upper bound on `size`, specials and `<unk>` included; the most frequent pieces are kept. */
  maxVocab?: number;
  /** Pieces seen fewer times than this in the training text become `<unk>` (default 1). */
  minCount?: number;
  /** Lowercase text before splitting, when building and when encoding (default false). */
  lowercase?: boolean;
}

function* splitWords(text: string): Iterable<Piece> {
  for (const match of text.matchAll(PIECE)) {
    yield { text: match[0], index: match.index };
  }
}

function checkWordToken(token: string): string | undefined {
  const pieces = [...splitWords(token)];
  return pieces.length === 1 && pieces[0].text === token
    ? undefined
    : `the word splitter cuts it into ${pieces.length} pieces`;
}

function positiveInteger(value: number | undefined, name: string, fallback: number): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result < 1) {
    throw new RangeError(
      `WordTokenizer.fromText: ${name} must be a positive integer, got ${String(value)}`,
    );
  }
  return result;
}

/**
 * Word-level tokenizer (see PIECE for the splitting rule). Ids follow frequency in the training
 * text, most frequent first, ties in code unit order, so the same text always yields the same ids.
 * `decode(encode(s)) === s` for in-vocabulary text (lowercased when `lowercase` is set).
 */
export class WordTokenizer extends VocabularyTokenizer {
  declare readonly kind: 'word';
  readonly lowercase: boolean;

  constructor(
    tokens: readonly string[],
    options: Pick<WordTokenizerOptions, 'specials' | 'lowercase'> = {},
  ) {
    super('word', tokens, options.specials ?? [], checkWordToken);
    this.lowercase = options.lowercase ?? false;
  }

  static fromText(text: string, options: WordTokenizerOptions = {}): WordTokenizer {
    if (typeof text !== 'string' || text.length === 0) {
      throw new Error('WordTokenizer.fromText: cannot build a vocabulary from empty text');
    }
    const specials = options.specials ?? [];
    const maxVocab = positiveInteger(options.maxVocab, 'maxVocab', Number.MAX_SAFE_INTEGER);
    const minCount = positiveInteger(options.minCount, 'minCount', 1);
    const room = maxVocab - specials.length - 1;
    if (room < 1) {
      throw new RangeError(
        `WordTokenizer.fromText: maxVocab ${maxVocab} leaves no room for words next to ` +
          `${specials.length} specials and <unk>; it must be at least ${specials.length + 2}`,
      );
    }
    const lowercase = options.lowercase ?? false;
    const counts = new Map<string, number>();
    for (const piece of splitWords(lowercase ? text.toLowerCase() : text)) {
      counts.set(piece.text, (counts.get(piece.text) ?? 0) + 1);
    }
    const tokens = [...counts]
      .filter(([, count]) => count >= minCount)
      .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : 1))
      .slice(0, room)
      .map(([token]) => token);
    if (tokens.length === 0) {
      throw new Error(`WordTokenizer.fromText: no piece of the text occurs ${minCount} times`);
    }
    return new WordTokenizer(tokens, { specials, lowercase });
  }

  protected pieces(text: string): Iterable<Piece> {
    // With lowercase set, indices in error messages refer to the lowercased text, which has the
    // same length as the input except for a few characters such as U+0130.
    return splitWords(this.lowercase ? text.toLowerCase() : text);
  }

  protected describe(piece: string): string {
    return `token ${JSON.stringify(piece)}`;
  }

  toJSON(): WordTokenizerJSON {
    return {
      kind: 'word',
      version: 1,
      specials: [...this.specials],
      tokens: [...this.tokens],
      lowercase: this.lowercase,
    };
  }
}
