/**
 * The contract every rnnkit tokenizer meets, and the vocabulary machinery the char and word
 * tokenizers share (byte-level BPE and SentencePiece live in bpe.ts and sentencepiece.ts).
 *
 * Vocabulary layout (char and word): `[...specials, ...tokens, <unk>]`. Reserved specials come first
 * so that `<pad>` can be id 0; the unknown token is always last (`unknownId === size - 1`) so that
 * the ids of real tokens do not move when specials are or are not requested.
 *
 * Unknown policy: `encode` throws on a piece of text that is not in the vocabulary, naming it and
 * its position, unless the caller passes `{ unknown: 'map' }`, which encodes it as `unknownId`.
 * Failing by default keeps a typo in a prompt from silently becoming `<unk>`.
 *
 * Specials are control tokens, not text: `encode` never produces them (a prompt containing the
 * string "<eos>" is ordinary text), callers insert them by id (`specialId`), and `decode` drops
 * them. `decode` writes the unknown token as U+FFFD, the Unicode replacement character.
 */

export type TokenizerKind = 'char' | 'word' | 'bpe' | 'sentencepiece';

/** What `encode` does with text that is not in the vocabulary. */
export type UnknownPolicy = 'error' | 'map';

export interface EncodeOptions {
  /** `'error'` (default) throws; `'map'` encodes unknown pieces as `unknownId`. */
  unknown?: UnknownPolicy;
}

export interface DecodeOptions {
  /**
   * For subword tokenizers whose tokens are bytes: leave out a UTF-8 sequence that the last ids
   * begin but do not finish (more ids may finish it) instead of writing it as U+FFFD. Streaming
   * decoders set it so that they never emit half a character.
   */
  stream?: boolean;
}

/** Options shared by every tokenizer factory. */
export interface TokenizerOptions {
  /** Reserved control tokens placed at ids 0, 1, ... in this order, e.g. `['<pad>', '<bos>', '<eos>']`. */
  specials?: readonly string[];
}

export interface CharTokenizerJSON {
  kind: 'char';
  version: 1;
  specials: string[];
  tokens: string[];
}

export interface WordTokenizerJSON {
  kind: 'word';
  version: 1;
  specials: string[];
  tokens: string[];
  lowercase: boolean;
}

export interface BpeTokenizerJSON {
  kind: 'bpe';
  version: 1;
  specials: string[];
  /** Merge k as the pair [merges[2k], merges[2k+1]] of byte-level ids (0-255 bytes, 256+j merge j). */
  merges: number[];
}

export interface SentencePieceTokenizerJSON {
  kind: 'sentencepiece';
  version: 1;
  /** The SentencePiece `.model` file, base64. */
  model: string;
}

/** The serialised vocabulary; `tokenizerFromJSON` turns it back into a tokenizer. */
export type TokenizerJSON =
  CharTokenizerJSON | WordTokenizerJSON | BpeTokenizerJSON | SentencePieceTokenizerJSON;

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of ids: specials + tokens + the unknown token. */
  readonly size: number;
  /**
   * Id of the unknown token: `size - 1` for char and word tokenizers, the model's own for
   * SentencePiece, null for byte-level BPE, which has none.
   */
  readonly unknownId: number | null;
  readonly specials: readonly string[];
  /** Id of a reserved special token; throws if the tokenizer has no special of that name. */
  specialId(name: string): number;
  encode(text: string, options?: EncodeOptions): Int32Array;
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  toJSON(): TokenizerJSON;
}

/** A piece of the text being encoded and the UTF-16 index (usable with `slice`) where it starts. */
export interface Piece {
  text: string;
  index: number;
}

/** Returns why `token` cannot be a vocabulary entry, or undefined when it can. */
export type TokenCheck = (token: string) => string | undefined;

const REPLACEMENT_CHARACTER = '\uFFFD';

/** Checks a tokenizer's specials (non-empty strings, no repeats) and maps each to its index. */
export function specialIndex(
  kind: TokenizerKind,
  specials: readonly string[],
): Map<string, number> {
  const ids = new Map<string, number>();
  specials.forEach((special, i) => {
    if (typeof special !== 'string' || special.length === 0) {
      throw new TypeError(
        `invalid ${kind} tokenizer: specials[${i}] must be a non-empty string, got ${JSON.stringify(special)}`,
      );
    }
    if (ids.has(special)) {
      throw new Error(
        `invalid ${kind} tokenizer: special ${JSON.stringify(special)} is listed twice`,
      );
    }
    ids.set(special, i);
  });
  return ids;
}

/** The id of special `name`, or an error listing the specials there are. */
export function lookupSpecial(ids: ReadonlyMap<string, number>, name: string): number {
  const id = ids.get(name);
  if (id === undefined) {
    const known = ids.size > 0 ? [...ids.keys()].join(', ') : 'none';
    throw new Error(`no special token ${JSON.stringify(name)} (this tokenizer has: ${known})`);
  }
  return id;
}

const isId = (id: number, size: number) => Number.isInteger(id) && id >= 0 && id < size;

/** ids[i], checked to be an integer id below `size`. */
export function checkId(ids: ArrayLike<number>, i: number, size: number): number {
  const id = ids[i];
  if (!isId(id, size)) {
    throw new RangeError(`decode: ids[${i}] is ${id}, expected an integer id in [0, ${size})`);
  }
  return id;
}

/** `id`, checked to be an integer id below `size`; `fn` names the caller in the error. */
export function checkTokenId(fn: string, id: number, size: number): number {
  if (!isId(id, size)) {
    throw new RangeError(`${fn}: id ${id} is not an integer id in [0, ${size})`);
  }
  return id;
}

export abstract class VocabularyTokenizer implements Tokenizer {
  readonly kind: TokenizerKind;
  readonly size: number;
  readonly unknownId: number;
  readonly specials: readonly string[];
  protected readonly tokens: readonly string[];
  private readonly tokenIds = new Map<string, number>();
  private readonly specialIds: Map<string, number>;

  protected constructor(
    kind: TokenizerKind,
    tokens: readonly string[],
    specials: readonly string[],
    checkToken: TokenCheck,
  ) {
    this.kind = kind;
    this.specials = [...specials];
    this.tokens = [...tokens];
    this.size = specials.length + tokens.length + 1;
    this.unknownId = this.size - 1;
    this.specialIds = specialIndex(kind, specials);
    tokens.forEach((token, i) => {
      const problem = typeof token === 'string' ? checkToken(token) : 'it is not a string';
      if (problem !== undefined) {
        throw new Error(
          `invalid ${kind} tokenizer: tokens[${i}] ${JSON.stringify(token)} cannot be a token: ${problem}`,
        );
      }
      if (this.tokenIds.has(token)) {
        throw new Error(
          `invalid ${kind} tokenizer: token ${JSON.stringify(token)} is listed twice`,
        );
      }
      this.tokenIds.set(token, specials.length + i);
    });
  }

  /** Splits normalised text into the pieces that are looked up in the vocabulary. */
  protected abstract pieces(text: string): Iterable<Piece>;

  /** Names an out-of-vocabulary piece in an error message. */
  protected abstract describe(piece: string): string;

  abstract toJSON(): TokenizerJSON;

  specialId(name: string): number {
    return lookupSpecial(this.specialIds, name);
  }

  encode(text: string, options: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') {
      throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    }
    const policy = options.unknown ?? 'error';
    if (policy !== 'error' && policy !== 'map') {
      throw new TypeError(
        `encode: options.unknown must be 'error' or 'map', got ${JSON.stringify(policy)}`,
      );
    }
    // Every piece is at least one UTF-16 unit long, so text.length bounds the number of ids.
    const ids = new Int32Array(text.length);
    let count = 0;
    for (const piece of this.pieces(text)) {
      const id = this.tokenIds.get(piece.text);
      if (id !== undefined) {
        ids[count++] = id;
      } else if (policy === 'map') {
        ids[count++] = this.unknownId;
      } else {
        throw new Error(
          `${this.describe(piece.text)} at index ${piece.index} is not in the ${this.kind} ` +
            `vocabulary; pass { unknown: 'map' } to encode it as the unknown token (id ${this.unknownId})`,
        );
      }
    }
    return ids.slice(0, count);
  }

  decode(ids: ArrayLike<number>): string {
    const parts: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = checkId(ids, i, this.size);
      if (id === this.unknownId) {
        parts.push(REPLACEMENT_CHARACTER);
      } else if (id >= this.specials.length) {
        parts.push(this.tokens[id - this.specials.length]);
      }
    }
    return parts.join('');
  }
}
