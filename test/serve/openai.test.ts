// POST /v1/completions and GET /v1/models of `rnnkit serve`, through the official `openai` client:
// the texts are the library's for the same options, the log-probabilities are the model's, and
// errors surface as the client's error classes.
import * as path from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel } from '../../lib/index';
import { serveCli, type ServeCli } from '../helpers/serve-cli';
import { tmpDir } from '../helpers/tmp';

const corpus = 'the quick brown fox jumps over the lazy dog. ';
const dir = tmpDir();
const KEY = 'sk-test-0123456789';
const model = new LanguageModel({
  tokenizer: CharTokenizer.fromText(corpus),
  hiddenSize: 32,
  embeddingSize: 16,
  numLayers: 2,
  seed: 5,
});

let server: ServeCli;
let client: OpenAI;

beforeAll(async () => {
  const file = path.join(dir, 'fox.safetensors');
  await model.save(file);
  server = await serveCli([
    '--model',
    file,
    '--threads',
    '1',
    '--max-batch',
    '8',
    '--api-key',
    KEY,
  ]);
  client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await server?.stop();
});

/** A metric's value; a counter never incremented has no line yet and counts as `absent`. */
async function metric(at: ServeCli, name: string, absent?: number): Promise<number> {
  const text = await (
    await fetch(`${at.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } })
  ).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m && absent !== undefined) return absent;
  if (!m) throw new Error(`no metric ${name}`);
  return Number(m[1]);
}

describe('the openai client against rnnkit serve', () => {
  it('lists the served model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([
      ['fox', 'model', 'rnnkit'],
    ]);
    expect((await client.models.retrieve('fox')).id).toBe('fox');
  });

  it('completes a prompt as generate does, with usage', async () => {
    const r = await client.completions.create({
      model: 'fox',
      prompt: 'the quick',
      max_tokens: 12,
      seed: 3,
    });
    const [want] = await model.generate({ prompts: ['the quick'], maxTokens: 12, seed: 3 });
    expect(r.object).toBe('text_completion');
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.model).toBe('fox');
    expect(r.choices).toEqual([{ index: 0, text: want, logprobs: null, finish_reason: 'length' }]);
    expect(r.usage).toEqual({ prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 });
  });

  it('gives n choices per prompt, each a row of one generate call', async () => {
    const r = await client.completions.create({
      model: 'fox',
      prompt: ['the', 'a lazy'],
      n: 3,
      max_tokens: 10,
      seed: 8,
      temperature: 1.2,
    });
    const want = await model.generate({
      prompts: ['the', 'the', 'the', 'a lazy', 'a lazy', 'a lazy'],
      maxTokens: 10,
      seed: 8,
      temperature: 1.2,
    });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.choices.map((c) => c.text)).toEqual(want);
    expect(new Set(want.slice(0, 3)).size).toBeGreaterThan(1);
    expect(r.usage?.prompt_tokens).toBe(3 + 6);
  });

  it('stops at a stop string and says so', async () => {
    const options = { prompt: 'the', max_tokens: 60, seed: 4, stop: ['o', 'e '] };
    const r = await client.completions.create({ model: 'fox', ...options });
    const [want] = await model.generate({
      prompts: ['the'],
      maxTokens: 60,
      seed: 4,
      stop: options.stop,
    });
    expect(want.length).toBeLessThan(60);
    expect(r.choices[0].text).toBe(want);
    expect(r.choices[0].finish_reason).toBe('stop');
  });

  it("gives the model's log-probabilities of the echoed prompt and the completion", async () => {
    const r = await client.completions.create({
      model: 'fox',
      prompt: 'over the',
      max_tokens: 20,
      temperature: 0,
      logprobs: 3,
      echo: true,
    });
    const [choice] = r.choices;
    const lp = choice.logprobs!;
    expect(choice.text.startsWith('over the')).toBe(true);
    expect(lp.tokens!.join('')).toBe(choice.text);
    expect(lp.text_offset).toEqual(lp.tokens!.map((_t, i) => i));
    expect(lp.token_logprobs![0]).toBeNull();
    // The cross-entropy of the whole text, state carried through it, is the mean of -logprob.
    const logprobs = lp.token_logprobs!.slice(1) as number[];
    const mean = -logprobs.reduce((s, v) => s + v, 0) / logprobs.length;
    const { loss } = model.evaluate(choice.text, { seqLength: choice.text.length - 1 });
    expect(mean).toBeCloseTo(loss, 4);
    // Greedy decoding picks the likeliest token: the best alternative of every completion token.
    lp.top_logprobs!.slice(8).forEach((top, i) => {
      const entries = Object.entries(top!).sort((a, b) => b[1] - a[1]);
      expect(entries.length).toBe(3);
      expect(entries[0][0]).toBe(lp.tokens![8 + i]);
      expect(entries[0][1]).toBeCloseTo(lp.token_logprobs![8 + i]!, 5);
    });
  });

  it('streams chunks that make the same text, with for await', async () => {
    const options = { prompt: 'the lazy', max_tokens: 25, seed: 6, n: 2 };
    const stream = await client.completions.create({ model: 'fox', ...options, stream: true });
    const texts = ['', ''];
    const finish: (string | null)[] = [null, null];
    for await (const chunk of stream) {
      expect(chunk.object).toBe('text_completion');
      for (const c of chunk.choices) {
        expect(finish[c.index]).toBeNull();
        texts[c.index] += c.text;
        finish[c.index] = c.finish_reason;
      }
    }
    const whole = await client.completions.create({ model: 'fox', ...options });
    expect(texts).toEqual(whole.choices.map((c) => c.text));
    expect(finish).toEqual(['length', 'length']);
  });

  it('a wrong key is an AuthenticationError', async () => {
    const wrong = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const error = await wrong.completions
      .create({ model: 'fox', prompt: 'the', max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
  });

  it('a bad field is a BadRequestError naming it', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ top_p: 1.5 }, 'top_p', /^top_p must be a finite number in \[1e-9, 1\], got 1.5/],
      [{ max_tokens: 0 }, 'max_tokens', /^max_tokens must be an integer in \[1, 2048\], got 0/],
      [{ n: 100 }, 'n', /^n must be an integer in \[1, 64\]/],
      [{ logprobs: 6 }, 'logprobs', /^logprobs must be an integer in \[0, 5\], got 6/],
      [{ temprature: 1 }, 'temprature', /^unknown field 'temprature'/],
      [{ prompt: 'the ~' }, 'prompt', /^prompt: character "~"/],
      [{ prompt: ['the', 7] }, 'prompt', /^prompt\[1\] must be a string, got number/],
      [{ prompt: 'the', stream: true, logprobs: 1 }, 'logprobs', /not available with stream/],
    ];
    for (const [fields, param, message] of cases) {
      const error = await client.completions
        .create({ model: 'fox', prompt: 'the', max_tokens: 2, ...fields } as never)
        .catch((e: unknown) => e);
      expect(error, JSON.stringify(fields)).toBeInstanceOf(OpenAI.BadRequestError);
      const e = error as InstanceType<typeof OpenAI.BadRequestError>;
      expect([e.status, e.param, e.type], JSON.stringify(fields)).toEqual([
        400,
        param,
        'invalid_request_error',
      ]);
      expect((e.error as { message: string }).message).toMatch(message);
    }
  });

  it('an unknown model is a NotFoundError', async () => {
    const error = await client.completions
      .create({ model: 'gpt-4', prompt: 'the', max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});

describe('a stream the client leaves', () => {
  // A model slow enough (hidden 512) that 2000 tokens take seconds, not milliseconds.
  let big: ServeCli;
  let slow: OpenAI;
  beforeAll(async () => {
    const file = path.join(dir, 'big.safetensors');
    const bigModel = new LanguageModel({
      tokenizer: CharTokenizer.fromText(corpus),
      hiddenSize: 512,
      numLayers: 2,
      seed: 1,
    });
    await bigModel.save(file);
    big = await serveCli(['--model', file, '--threads', '1', '--api-key', KEY]);
    slow = new OpenAI({ apiKey: KEY, baseURL: `${big.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await big?.stop();
  });

  it('frees the batch row of a stream the client aborts', async () => {
    const before = await metric(big, 'rnnkit_generated_tokens_total', 0);
    const stream = await slow.completions.create({
      model: 'big',
      prompt: 'the',
      max_tokens: 2000,
      seed: 1,
      stream: true,
    });
    let chunks = 0;
    for await (const chunk of stream) {
      expect(chunk.choices[0].finish_reason).toBeNull();
      if (++chunks === 3) break;
    }
    // Leaving the loop aborts the request; the server cancels the row at its next round.
    let active = await metric(big, 'rnnkit_batch_active');
    for (let i = 0; i < 200 && active > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      active = await metric(big, 'rnnkit_batch_active');
    }
    expect(active).toBe(0);
    expect(await metric(big, 'rnnkit_requests_in_flight')).toBe(0);
    // The row ended long before its 2000 tokens.
    const generated = (await metric(big, 'rnnkit_generated_tokens_total')) - before;
    expect(generated).toBeLessThan(2000);
  });
});
