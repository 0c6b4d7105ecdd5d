import { native, type CharClassRanges, type NativeBpeEncoder } from '../core/native';
import {
  checkId,
  checkTokenId,
  lookupSpecial,
  specialIndex,
  type BpeTokenizerJSON,
  type DecodeOptions,
  type Tokenizer,
  type TokenizerOptions,
} from './tokenizer';
import { decodeWtf8 } from './utf8';

/** The 256 byte tokens every byte-level BPE starts from. */
export const BYTE_ALPHABET = 256;

export interface BpeTrainOptions extends TokenizerOptions {
  /** Ids in all: specials + the 256 bytes + learned merges. */
  vocabSize: number;
  /** Stop merging when the most frequent pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Called now and then with the merges learned so far and the most that will be learned. */
  onProgress?: (merges: number, total: number) => void;
  signal?: AbortSignal;
}

let classes: CharClassRanges | undefined;

/**
 * The pre-tokenizer's Unicode classes, read from this JS engine's own tables once per thread, so
 * that the native pre-tokenizer splits exactly where the regular expression
 * `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (flag u) would.
 */
function charClasses(): CharClassRanges {
  if (classes) return classes;
  const tests: [RegExp, number[]][] = [
    [/^\p{L}$/u, []],
    [/^\p{N}$/u, []],
    [/^\s$/u, []],
  ];
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    const c = String.fromCodePoint(cp);
    const hit = tests.find(([re]) => re.test(c));
    if (!hit) continue;
    const ranges = hit[1];
    if (ranges.length > 0 && ranges[ranges.length - 1] === cp - 1) ranges[ranges.length - 1] = cp;
    else ranges.push(cp, cp);
  }
  const [letter, number, space] = tests.map(([, r]) => Int32Array.from(r));
  classes = { letter, number, space };
  return classes;
}

function checkInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `BpeTokenizer.train: ${name} must be an integer >= ${min}, got ${String(value)}`,
    );
  }
  return value;
}

function abortError(): Error {
  const e = new Error('BpeTokenizer.train: training was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * Byte-level BPE. Text is split GPT-2 style (see charClasses: a space goes with the word after
 * it; letters, numbers and other symbols form separate runs; contractions are their own pieces),
 * each piece is written as bytes (WTF-8, so every JS string round-trips, lone surrogates
 * included) and the learned merges are applied within each piece, lowest rank first, leftmost
 * first among equals. There is no unknown token: every byte has an id.
 *
 * Ids: `[...specials, 256 bytes in byte order, merge 0, merge 1, ...]`. Specials are control
 * tokens, as for every rnnkit tokenizer: `encode` never produces them and `decode` drops them.
 */
export class BpeTokenizer implements Tokenizer {
  readonly kind = 'bpe' as const;
  readonly size: number;
  readonly unknownId = null;
  readonly specials: readonly string[];
  /** Merge k is the pair [merges[2k], merges[2k+1]] of ids before the specials offset. */
  readonly merges: Int32Array;
  private readonly specialIds: Map<string, number>;
  private readonly encoder: NativeBpeEncoder;
  private readonly pieces: Uint8Array[];

  constructor(merges: ArrayLike<number>, options: TokenizerOptions = {}) {
    const specials = options.specials ?? [];
    this.specialIds = specialIndex('bpe', specials);
    this.specials = [...specials];
    if (merges.length % 2 !== 0) {
      throw new RangeError(
        `invalid bpe tokenizer: merges must hold [left, right] pairs, got ${merges.length} ids`,
      );
    }
    this.merges = Int32Array.from(merges);
    this.merges.forEach((id, i) => {
      const limit = BYTE_ALPHABET + Math.floor(i / 2);
      if (id !== merges[i] || id < 0 || id >= limit) {
        throw new RangeError(
          `invalid bpe tokenizer: merge ${Math.floor(i / 2)} uses ${merges[i]}, expected an ` +
            `id below ${limit} (a byte or an earlier merge)`,
        );
      }
    });
    this.encoder = new native.BpeEncoder(this.merges, charClasses());
    this.pieces = Array.from({ length: BYTE_ALPHABET }, (_, b) => Uint8Array.of(b));
    for (let k = 0; k < this.merges.length; k += 2) {
      const [a, b] = [this.pieces[this.merges[k]], this.pieces[this.merges[k + 1]]];
      const piece = new Uint8Array(a.length + b.length);
      piece.set(a);
      piece.set(b, a.length);
      this.pieces.push(piece);
    }
    this.size = specials.length + this.pieces.length;
  }

  /**
   * Learns merges from a corpus (a string, or `{ file }` read natively as strict UTF-8) until
   * `vocabSize` ids exist or no pair occurs `minFrequency` times. Runs off the event loop.
   * Deterministic: the most frequent pair wins, ties going to the pair with the smaller left id,
   * then the smaller right id (bytes by value, merges by age).
   */
  static async train(
    corpus: string | { file: string },
    options: BpeTrainOptions,
  ): Promise<BpeTokenizer> {
    const specials = options.specials ?? [];
    const vocabSize = checkInteger('vocabSize', options.vocabSize, 1);
    const minFrequency = checkInteger('minFrequency', options.minFrequency ?? 2, 1);
    if (vocabSize < BYTE_ALPHABET + specials.length) {
      throw new RangeError(
        `BpeTokenizer.train: vocabSize ${vocabSize} is smaller than the byte alphabet: ` +
          `a byte-level BPE needs ${BYTE_ALPHABET} byte ids` +
          (specials.length ? ` plus ${specials.length} specials` : '') +
          `, so at least ${BYTE_ALPHABET + specials.length}`,
      );
    }
    if (typeof corpus !== 'string' && typeof corpus?.file !== 'string') {
      throw new TypeError('BpeTokenizer.train: corpus must be a string or { file: string }');
    }
    if (corpus === '') throw new Error('BpeTokenizer.train: the corpus is empty');
    const source = typeof corpus === 'string' ? { text: corpus } : { file: corpus.file };
    specialIndex('bpe', specials);
    const { signal } = options;
    if (signal?.aborted) throw abortError();
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(cancel, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const merges = await native.bpeTrain(
        source,
        { maxMerges: vocabSize - BYTE_ALPHABET - specials.length, minFrequency },
        charClasses(),
        cancel,
        options.onProgress,
      );
      return new BpeTokenizer(merges, { specials });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw abortError();
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  specialId(name: string): number {
    return lookupSpecial(this.specialIds, name);
  }

  encode(text: string): Int32Array {
    if (typeof text !== 'string') {
      throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    }
    const ids = this.encoder.encode(text);
    const offset = this.specials.length;
    if (offset > 0) for (let i = 0; i < ids.length; i++) ids[i] += offset;
    return ids;
  }

  /** The bytes id `id` stands for (empty for a special). */
  tokenBytes(id: number): Uint8Array {
    const i = checkTokenId('tokenBytes', id, this.size) - this.specials.length;
    return i < 0 ? new Uint8Array(0) : this.pieces[i];
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const offset = this.specials.length;
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = checkId(ids, i, this.size);
      if (id >= offset) length += this.pieces[id - offset].length;
    }
    const bytes = new Uint8Array(length);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < offset) continue;
      const piece = this.pieces[ids[i] - offset];
      bytes.set(piece, at);
      at += piece.length;
    }
    return decodeWtf8(bytes, { stream: options.stream });
  }

  toJSON(): BpeTokenizerJSON {
    return {
      kind: 'bpe',
      version: 1,
      specials: [...this.specials],
      merges: Array.from(this.merges),
    };
  }
}
