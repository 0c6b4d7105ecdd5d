// Tab-separated pairs files (one pair a line, like the Tatoeba/ManyThings exports): decoded with
// the corpus checks (UTF-8 only, no binary), blank lines skipped, every other line required to
// have both columns, non-empty.
import { validateCorpus } from './';
import type { TextPair } from '../train/seq2seq-fit';

export interface PairsFormat {
  /** 0-based column of the source (default 0) and of the target (default 1). */
  sourceColumn?: number;
  targetColumn?: number;
}

/** Parses a pairs file's bytes; errors name the file, the line and what is wrong. */
export function parsePairs(bytes: Uint8Array, name: string, format: PairsFormat = {}): TextPair[] {
  const sc = format.sourceColumn ?? 0;
  const tc = format.targetColumn ?? 1;
  for (const [what, c] of [
    ['sourceColumn', sc],
    ['targetColumn', tc],
  ] as const) {
    if (!Number.isInteger(c) || c < 0) {
      throw new RangeError(`${what} must be a non-negative integer, got ${c}`);
    }
  }
  if (sc === tc) throw new RangeError(`the source and target columns are both ${sc}`);
  const text = validateCorpus(bytes, name);
  const pairs: TextPair[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const cols = line.split('\t');
    const need = Math.max(sc, tc) + 1;
    if (cols.length < need) {
      throw new Error(
        `${name}, line ${i + 1}: ${cols.length} tab-separated column${cols.length === 1 ? '' : 's'}, ` +
          `need at least ${need} (source column ${sc}, target column ${tc})`,
      );
    }
    const source = cols[sc].trim();
    const target = cols[tc].trim();
    if (source === '' || target === '') {
      throw new Error(
        `${name}, line ${i + 1}: the ${source === '' ? 'source' : 'target'} is empty`,
      );
    }
    pairs.push({ source, target });
  });
  if (pairs.length === 0) throw new Error(`${name} holds no pairs`);
  return pairs;
}
