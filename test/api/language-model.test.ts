import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel, loadModel } from '../../lib/index';
import { addonChoice } from '../../lib/core/native';

const corpus = 'the quick brown fox jumps over the lazy dog. '.repeat(60);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-lm-'));

function small(cell: 'lstm' | 'gru' | 'rnn' = 'lstm', extra = {}) {
  return new LanguageModel({
    tokenizer: CharTokenizer.fromText(corpus),
    cell,
    hiddenSize: 24,
    embeddingSize: 12,
    numLayers: 2,
    seed: 3,
    ...extra,
  });
}

describe('LanguageModel', () => {
  it('prints a summary of its layers and parameter count', () => {
    const m = small();
    const s = m.summary();
    expect(s).toMatch(/Embedding\(\d+, 12\)/);
    expect(s).toMatch(/LSTM\(12 -> 24, numLayers=2\)/);
    expect(s).toContain(`total parameters: ${m.numParameters().toLocaleString('en-US')}`);
  });

  it('forward gives [T, B, V] logits and carries state like one long sequence', () => {
    const m = small('gru');
    const V = m.spec.vocabSize;
    const whole = m.forward([[1], [2], [3], [4]]);
    expect(whole.logits.length).toBe(4 * V);
    const first = m.forward([[1], [2]]);
    const second = m.forward([[3], [4]], first.state);
    const tail = whole.logits.subarray(2 * V);
    for (let i = 0; i < tail.length; i++) expect(second.logits[i]).toBeCloseTo(tail[i], 5);
  });

  it('forward rejects ragged token batches and bad shapes', () => {
    const m = small();
    expect(() => m.forward([[1, 2], [3]])).toThrow(/tokens\[1\] must hold 2 ids/);
    expect(() => m.forward([])).toThrow(RangeError);
    expect(() => m.forward({ ids: new Int32Array(5), steps: 2, batch: 2 })).toThrow(
      /steps\*batch = 4/,
    );
    expect(() => m.forward([[999]])).toThrow(/ids\[0\]' must be in \[0, \d+\)/);
  });

  it('fit lowers the loss, reports progress and keeps the event loop responsive', async () => {
    const m = small();
    const before = m.evaluate(corpus.slice(0, 500)).loss;
    let progress = 0;
    let worstGap = 0;
    const start = performance.now();
    let last = start;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 5);
    const history = await m.fit(corpus, {
      steps: 120,
      batchSize: 4,
      seqLength: 16,
      learningRate: 1e-2,
      validationSplit: 0.1,
      validateEvery: 40,
      onProgress: () => progress++,
    });
    clearInterval(timer);
    const elapsed = performance.now() - start;
    const after = m.evaluate(corpus.slice(0, 500)).loss;
    expect(history.steps).toBe(120);
    expect(history.stopped).toBe('completed');
    expect(history.validation.length).toBe(3);
    expect(after).toBeLessThan(before * 0.6);
    expect(progress).toBeGreaterThan(0);
    // Training on the event loop would stall the timer for the whole run; off it, the timer's
    // longest wait is a small part of the run, however busy the machine (a fixed bound in ms is
    // a timing test, which a loaded machine fails).
    expect(worstGap).toBeLessThan(elapsed / 4);
  });

  it('dropout keeps about 1 - p of the elements, scaled, with a mask fixed by the seed', () => {
    const addon = require(addonChoice.file);
    const x = new Float32Array(20000).fill(1);
    const y = new Float32Array(x.length);
    addon.dropout(x, 0.3, 7, y);
    const kept = y.filter((v: number) => v !== 0);
    expect(kept.length / x.length).toBeGreaterThan(0.68);
    expect(kept.length / x.length).toBeLessThan(0.72);
    expect(kept.every((v: number) => Math.abs(v - 1 / 0.7) < 1e-6)).toBe(true);
    const again = new Float32Array(x.length);
    addon.dropout(x, 0.3, 7, again);
    expect(Array.from(again)).toEqual(Array.from(y));
    addon.dropout(x, 0.3, 8, again);
    expect(Array.from(again)).not.toEqual(Array.from(y));
  });

  it('with dropout, training steps are noisy but inference is deterministic', () => {
    const m = small('lstm', { dropout: 0.4 });
    const ids = new Int32Array([1, 2, 3, 4, 5, 6]);
    const tg = new Int32Array([2, 3, 4, 5, 6, 7]);
    const a = m.lossAndGradients(ids, tg, 3, 2).loss;
    const b = m.lossAndGradients(ids, tg, 3, 2).loss;
    expect(a).not.toBe(b);
    const f1 = m.forward({ ids, steps: 3, batch: 2 }).logits;
    const f2 = m.forward({ ids, steps: 3, batch: 2 }).logits;
    expect(Array.from(f1)).toEqual(Array.from(f2));
  });

  it('evaluate reports loss, perplexity and bits per token consistently', () => {
    const r = small().evaluate(corpus.slice(0, 300));
    expect(r.perplexity).toBeCloseTo(Math.exp(r.loss), 6);
    expect(r.bitsPerToken).toBeCloseTo(r.loss / Math.LN2, 6);
    expect(r.tokens).toBeGreaterThan(0);
  });

  it('training with a seed is reproducible', async () => {
    const run = async () => {
      const m = small('rnn', { dropout: 0.2 });
      await m.fit(corpus, { steps: 10, batchSize: 2, seqLength: 8, seed: 5, validationSplit: 0 });
      return m.evaluate(corpus.slice(0, 200)).loss;
    };
    expect(await run()).toBe(await run());
  });

  it('fit can be aborted through an AbortSignal', async () => {
    const m = small();
    const ac = new AbortController();
    const h = await m.fit(corpus, {
      steps: 1_000_000,
      batchSize: 2,
      seqLength: 8,
      onProgress: () => ac.abort(),
      signal: ac.signal,
    });
    expect(h.stopped).toBe('aborted');
    expect(h.steps).toBeLessThan(1_000_000);
  });

  it('rejects bad training options and corpora with clear errors', async () => {
    const m = small();
    await expect(m.fit(corpus, { seqLength: 0 })).rejects.toThrow(/seqLength must be an integer/);
    await expect(m.fit(corpus, { learningRate: NaN })).rejects.toThrow(/learningRate/);
    await expect(m.fit(corpus, { batchSize: -1 })).rejects.toThrow(/batchSize/);
    await expect(m.fit(corpus, { stateResetRate: 1.5 })).rejects.toThrow(/stateResetRate/);
    await expect(m.fit('', {})).rejects.toThrow(/empty/);
    await expect(m.fit('the fox', { batchSize: 4, seqLength: 16 })).rejects.toThrow(
      /too few for one training window/,
    );
    await expect(m.fit('@ unknown', {})).rejects.toThrow(/not in the char vocabulary/);
  });

  it('saves and loads a checkpoint with identical outputs, and resumes training', async () => {
    const m = small('lstm', { tieWeights: true, embeddingSize: 24 });
    await m.fit(corpus, { steps: 6, batchSize: 2, seqLength: 8, validationSplit: 0 });
    const file = path.join(tmp, 'ckpt.safetensors');
    await m.save(file);
    const loaded = await loadModel(file);
    expect(loaded.spec).toEqual(m.spec);
    const a = m.forward([[1], [2], [3]]).logits;
    const b = loaded.forward([[1], [2], [3]]).logits;
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(loaded.resumeState?.training.step).toBe(6);
    const h = await loaded.fit(corpus, {
      steps: 9,
      batchSize: 2,
      seqLength: 8,
      validationSplit: 0,
      resume: loaded.resumeState ?? undefined,
    });
    expect(h.steps).toBe(9);
  });

  it('stopping at a checkpoint and resuming gives the weights of one uninterrupted run', async () => {
    // Dropout everywhere and state resets: every random stream and the carried state must resume.
    const extra = { dropout: 0.3 };
    const options = {
      batchSize: 3,
      seqLength: 7,
      learningRate: 5e-3,
      validationSplit: 0.1,
      validateEvery: 4,
      stateResetRate: 0.3,
      seed: 11,
    };
    const weights = (m: LanguageModel) => m.parameters().map((p) => Array.from(p.data));
    const straight = small('gru', extra);
    const whole = await straight.fit(corpus, { ...options, steps: 15 });

    const file = path.join(tmp, 'lm-resume.safetensors');
    const first = small('gru', extra);
    const saved: number[] = [];
    await first.fit(corpus, {
      ...options,
      steps: 8,
      checkpoint: { path: file, every: 4 },
      onCheckpoint: (c) => saved.push(c.step),
    });
    expect(saved).toEqual([4, 8]);
    const loaded = await loadModel(file);
    expect(loaded.resumeState?.training.step).toBe(8);
    const rest = await loaded.fit(corpus, {
      ...options,
      steps: 15,
      resume: loaded.resumeState ?? undefined,
    });
    expect(weights(loaded)).toEqual(weights(straight));
    for (const key of ['train', 'validation', 'bestValLoss', 'steps', 'stopped'] as const) {
      expect(rest[key], key).toEqual(whole[key]);
    }
    // Another batch size cannot continue the carried state.
    await expect(
      loaded.fit(corpus, {
        ...options,
        batchSize: 4,
        steps: 20,
        resume: loaded.resumeState ?? undefined,
      }),
    ).rejects.toThrow(/recurrent state has 144 values, this run's has 192/);
  });

  it('a failed save leaves the previous checkpoint intact', async () => {
    const m = small();
    const file = path.join(tmp, 'keep.safetensors');
    await m.save(file);
    const before = fs.readFileSync(file);
    await expect(m.save(path.join(tmp, 'missing-dir', 'x.safetensors'))).rejects.toThrow(
      /cannot write/,
    );
    fs.mkdirSync(path.join(tmp, 'a-dir.safetensors'));
    await expect(m.save(path.join(tmp, 'a-dir.safetensors'))).rejects.toThrow(/cannot write/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('loading a missing, truncated, corrupt or foreign file gives one clear error', async () => {
    const m = small();
    const good = path.join(tmp, 'good.safetensors');
    await m.save(good);
    const bytes = fs.readFileSync(good);
    const truncated = path.join(tmp, 'truncated.safetensors');
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    const random = path.join(tmp, 'random.safetensors');
    fs.writeFileSync(random, Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97) % 256)));
    const foreign = path.join(tmp, 'foreign.safetensors');
    await m.toPyTorch(foreign);
    await expect(loadModel(path.join(tmp, 'nope.safetensors'))).rejects.toThrow(/cannot read/);
    await expect(loadModel(truncated)).rejects.toThrow(/not a valid safetensors file/);
    await expect(loadModel(random)).rejects.toThrow(/not a valid safetensors file/);
    await expect(loadModel(foreign)).rejects.toThrow(/not an rnnkit checkpoint/);
  });

  it('fromPyTorch rejects missing and misshapen tensors, naming them', async () => {
    const m = small('gru');
    const file = path.join(tmp, 'pt.safetensors');
    await m.toPyTorch(file);
    const config = {
      tokenizer: m.tokenizer!,
      cell: 'gru' as const,
      hiddenSize: 24,
      embeddingSize: 12,
      numLayers: 2,
    };
    const back = await LanguageModel.fromPyTorch(file, config);
    expect(Array.from(back.forward([[4]]).logits)).toEqual(Array.from(m.forward([[4]]).logits));
    await expect(LanguageModel.fromPyTorch(file, { ...config, numLayers: 3 })).rejects.toThrow(
      /missing tensor 'rnn.weight_ih_l2'/,
    );
    await expect(LanguageModel.fromPyTorch(file, { ...config, hiddenSize: 20 })).rejects.toThrow(
      /has shape \[72, 12\], expected \[60, 12\]|decoder.weight' has shape/,
    );
  });
});

describe('LanguageModel.close', () => {
  it('waits for the generation in flight, then frees the weights and refuses further use', async () => {
    const m = small();
    const expected = await small().generate({ prompts: ['the'], maxTokens: 40, seed: 5 });
    const running = m.generate({ prompts: ['the'], maxTokens: 40, seed: 5 });
    const stack = m.rnn.weights.data;
    const closed = m.close();
    expect(await running).toEqual(expected);
    await closed;
    expect(stack.length).toBe(0);
    expect(() => m.rnn.weights.data).toThrow(
      /parameter 'weights' was released: its model was closed/,
    );
    await expect(m.generate({ prompts: ['the'], maxTokens: 4 })).rejects.toThrow(
      /model was closed|released/,
    );
    await expect(m.fit(corpus, { steps: 1 })).rejects.toThrow(/model was closed/);
    await m.close();
  });

  it('frees a loaded model whose file was float16, leaving other models untouched', async () => {
    const file = path.join(tmp, 'close-f16.safetensors');
    await small().save(file, { dtype: 'float16' });
    const a = await loadModel(file);
    const b = await loadModel(file);
    const before = await b.generate({ prompts: ['the'], maxTokens: 12, seed: 2 });
    await a.close();
    expect(await b.generate({ prompts: ['the'], maxTokens: 12, seed: 2 })).toEqual(before);
  });
});
