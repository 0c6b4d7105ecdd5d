// streamText over a token loop that plays back fixed byte tokens of a BPE vocabulary: a character
// is held back until its last byte comes, a stop string is found however the tokens split it,
// and a slow consumer still gets the whole text.
import { beforeAll, describe, expect, it } from 'vitest';

import { streamText, type TokenLoop } from '../../lib/decode/token-loop';
import { BpeTokenizer, type Tokenizer } from '../../lib/text';

// A token loop that plays back fixed tokens one per tick and stops when the cancel flag is set;
// it records how many it gave, so a test can see that a stop ended it early.
function playback(tokens: number[]): { loop: TokenLoop; given: () => number } {
  let given = 0;
  const loop: TokenLoop = async (_prompts, options, _stops, cancel, onTokens) => {
    const out = new Int32Array(options.maxTokens);
    for (; given < Math.min(tokens.length, options.maxTokens); given++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (Atomics.load(cancel, 0) !== 0) break;
      out[given] = tokens[given];
      onTokens?.(given, Int32Array.of(0), Int32Array.of(tokens[given]));
    }
    return { tokens: out, lengths: Int32Array.of(given), finish: Int32Array.of(0) };
  };
  return { loop, given: () => given };
}

async function collect(stream: AsyncGenerator<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const piece of stream) pieces.push(piece);
  return pieces;
}

/** The byte tokens (no merges) that spell `s`. */
function byteIds(tokenizer: Tokenizer, s: string): number[] {
  const offset = tokenizer.specials.length;
  return Array.from(new TextEncoder().encode(s), (b) => b + offset);
}

describe('streamText with a byte-level tokenizer', () => {
  let tokenizer: BpeTokenizer;
  beforeAll(async () => {
    tokenizer = await BpeTokenizer.train(
      'Hello world, hello words; the world of words.\n'.repeat(50),
      {
        vocabSize: 300,
      },
    );
  });

  it('holds back a character until its last byte token comes', async () => {
    const tokens = byteIds(tokenizer, 'a😀b');
    const { loop } = playback(tokens);
    const pieces = await collect(streamText(loop, tokenizer, { prompt: 'x', maxTokens: 10 }));
    expect(pieces.join('')).toBe('a😀b');
    expect(pieces).not.toContain('\uFFFD');
    expect(pieces.every((p) => p.isWellFormed())).toBe(true);
  });

  it('finds a stop string however the tokens split it, and ends the loop there', async () => {
    // "wor" + "ld" as single bytes: the stop "o w" spans three tokens, none of them its own.
    const tokens = byteIds(tokenizer, 'Hello world and more text after the stop');
    const { loop, given } = playback(tokens);
    const pieces = await collect(
      streamText(loop, tokenizer, { prompt: 'x', maxTokens: 100, stop: ['o w'] }),
    );
    expect(pieces.join('')).toBe('Hell');
    expect(given()).toBeLessThan(tokens.length);
    const spelled = byteIds(tokenizer, 'o w');
    expect(Array.from(tokenizer.encode('o w'))).not.toEqual(spelled);
  });

  it('gives all of the text to a consumer slower than the loop', async () => {
    const text = 'Hello world, and more words after it';
    const { loop } = playback(byteIds(tokenizer, text));
    const pieces: string[] = [];
    // The loop ends while the stream waits at its first yield.
    for await (const piece of streamText(loop, tokenizer, { prompt: 'x', maxTokens: 100 })) {
      pieces.push(piece);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(pieces.join('')).toBe(text);
  });
});
