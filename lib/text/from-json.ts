import { BpeTokenizer } from './bpe';
import { CharTokenizer } from './char';
import { SentencePieceTokenizer } from './sentencepiece';
import type { Tokenizer } from './tokenizer';
import { WordTokenizer } from './word';

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

function stringArray(json: Record<string, unknown>, field: string): string[] {
  const value = json[field];
  if (!Array.isArray(value)) {
    throw new TypeError(`tokenizer JSON: ${field} must be an array, got ${describeValue(value)}`);
  }
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'string') {
      throw new TypeError(
        `tokenizer JSON: ${field}[${i}] must be a string, got ${describeValue(item)}`,
      );
    }
  });
  return value as string[];
}

/**
 * Rebuilds a tokenizer from `tokenizer.toJSON()` (already parsed, e.g. from checkpoint metadata).
 * Every field is checked; the error names the field and what was wrong with it.
 */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TypeError(`tokenizer JSON must be an object, got ${describeValue(json)}`);
  }
  const fields = json as Record<string, unknown>;
  const { kind } = fields;
  if (kind !== 'char' && kind !== 'word' && kind !== 'bpe' && kind !== 'sentencepiece') {
    throw new Error(
      `tokenizer JSON: unknown kind ${JSON.stringify(kind)}, expected 'char', 'word', 'bpe' or 'sentencepiece'`,
    );
  }
  if (fields.version !== 1) {
    throw new Error(
      `tokenizer JSON: unsupported version ${JSON.stringify(fields.version)}, expected 1`,
    );
  }
  if (kind === 'sentencepiece') {
    if (typeof fields.model !== 'string') {
      throw new TypeError(
        `tokenizer JSON: model must be a base64 string, got ${describeValue(fields.model)}`,
      );
    }
    return new SentencePieceTokenizer(Buffer.from(fields.model, 'base64'), 'tokenizer JSON model');
  }
  const specials = stringArray(fields, 'specials');
  if (kind === 'bpe') {
    const { merges } = fields;
    if (!Array.isArray(merges) || !merges.every((m) => Number.isInteger(m))) {
      throw new TypeError('tokenizer JSON: merges must be an array of integer ids');
    }
    return new BpeTokenizer(merges as number[], { specials });
  }
  const tokens = stringArray(fields, 'tokens');
  if (kind === 'char') {
    return new CharTokenizer(tokens, { specials });
  }
  if (typeof fields.lowercase !== 'boolean') {
    throw new TypeError(
      `tokenizer JSON: lowercase must be a boolean, got ${describeValue(fields.lowercase)}`,
    );
  }
  return new WordTokenizer(tokens, { specials, lowercase: fields.lowercase });
}
