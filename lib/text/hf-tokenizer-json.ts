// Hugging Face `tokenizer.json` for byte-level BPE: a BPE model (vocab and merges over the GPT-2
// byte-to-character alphabet), the ByteLevel pre-tokenizer and decoder, specials as added tokens.
import { BpeTokenizer, BYTE_ALPHABET } from './bpe';

/**
 * GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the
 * rest (controls, space, 0x7F-0xA0, 0xAD) take U+0100 onwards in byte order.
 */
const BYTE_CHARS: string[] = (() => {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < BYTE_ALPHABET; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
})();

const BYTE_LEVEL = {
  type: 'ByteLevel',
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: true,
};

function tokenText(t: BpeTokenizer, id: number): string {
  return Array.from(t.tokenBytes(id), (b) => BYTE_CHARS[b]).join('');
}

/** The `tokenizer.json` object of a byte-level BPE tokenizer (write it with JSON.stringify). */
export function toHuggingFaceJSON(t: BpeTokenizer): Record<string, unknown> {
  const offset = t.specials.length;
  const vocab: Record<string, number> = {};
  t.specials.forEach((s, id) => (vocab[s] = id));
  for (let id = offset; id < t.size; id++) {
    const text = tokenText(t, id);
    if (text in vocab) {
      throw new Error(
        `toHuggingFaceJSON: special ${JSON.stringify(text)} is also a byte-level token`,
      );
    }
    vocab[text] = id;
  }
  const merges: string[] = [];
  for (let k = 0; k < t.merges.length; k += 2) {
    merges.push(`${tokenText(t, t.merges[k] + offset)} ${tokenText(t, t.merges[k + 1] + offset)}`);
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: t.specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: BYTE_LEVEL,
    post_processor: null,
    decoder: BYTE_LEVEL,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`tokenizer.json: ${what} must be an object, got ${JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

function expectByteLevel(json: Record<string, unknown>, key: string): void {
  const part = object(json[key], key);
  if (part.type !== 'ByteLevel') {
    throw new Error(
      `tokenizer.json: ${key} is ${JSON.stringify(part.type)}; rnnkit reads byte-level BPE, whose ${key} is ByteLevel`,
    );
  }
  if (part.add_prefix_space === true && key === 'pre_tokenizer') {
    throw new Error(
      'tokenizer.json: pre_tokenizer.add_prefix_space is true; rnnkit adds no prefix space',
    );
  }
}

/**
 * Reads a `tokenizer.json` holding a byte-level BPE laid out as `toHuggingFaceJSON` writes it:
 * specials first, then the 256 bytes in byte order, then one token per merge in merge order.
 * Any other model kind or layout is refused with an error saying what differs.
 */
export function fromHuggingFaceJSON(input: unknown): BpeTokenizer {
  const json = object(input, 'the file');
  const model = object(json.model, 'model');
  if (model.type !== 'BPE') {
    throw new Error(
      `tokenizer.json: the model is ${JSON.stringify(model.type)}; rnnkit reads byte-level BPE models only`,
    );
  }
  if (json.normalizer !== null && json.normalizer !== undefined) {
    throw new Error(
      'tokenizer.json: it has a normalizer; byte-level BPE as rnnkit reads it has none',
    );
  }
  expectByteLevel(json, 'pre_tokenizer');
  expectByteLevel(json, 'decoder');
  const vocab = object(model.vocab, 'model.vocab');
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  const specials = added.map((a, i) => {
    const token = object(a, `added_tokens[${i}]`);
    if (token.id !== i || typeof token.content !== 'string') {
      throw new Error(`tokenizer.json: added_tokens[${i}] must be a special with id ${i}`);
    }
    return token.content;
  });
  const idOf = (text: string, what: string): number => {
    const id = vocab[text];
    if (typeof id !== 'number') {
      throw new Error(`tokenizer.json: ${what} ${JSON.stringify(text)} is not in model.vocab`);
    }
    return id;
  };
  const offset = specials.length;
  const layout = (text: string, want: number, what: string) => {
    const id = idOf(text, what);
    if (id !== want) {
      throw new Error(
        `tokenizer.json: ${what} ${JSON.stringify(text)} has id ${id}, expected ${want}; rnnkit ` +
          'reads the layout it writes (specials, the 256 bytes in byte order, one token per merge)',
      );
    }
  };
  specials.forEach((s, id) => layout(s, id, 'special'));
  BYTE_CHARS.forEach((c, b) => layout(c, offset + b, 'byte token'));
  if (!Array.isArray(model.merges))
    throw new TypeError('tokenizer.json: model.merges must be an array');
  const merges: number[] = [];
  model.merges.forEach((m: unknown, k) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string')) {
      throw new Error(`tokenizer.json: model.merges[${k}] must be "left right" or [left, right]`);
    }
    const [left, right] = pair as string[];
    merges.push(idOf(left, 'merge token') - offset, idOf(right, 'merge token') - offset);
    layout(left + right, offset + BYTE_ALPHABET + k, `merge ${k} result`);
  });
  if (Object.keys(vocab).length !== offset + BYTE_ALPHABET + model.merges.length) {
    throw new Error('tokenizer.json: model.vocab has tokens that no byte or merge makes');
  }
  return new BpeTokenizer(merges, { specials });
}
