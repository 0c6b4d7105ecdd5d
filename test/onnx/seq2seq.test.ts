import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli';
import { expectOnnxChecked } from '../helpers/onnx-checker';
import {
  LanguageModel,
  OnnxGenerator,
  OnnxSeq2Seq,
  Seq2Seq,
  buildSeq2SeqOnnx,
  exportOnnx,
  exportSeq2SeqOnnx,
  pairBatch,
  seq2seqOnnxPaths,
  startServer,
  type RunningServer,
  type Translation,
} from '../../lib/index';
import {
  decoderStep,
  exportedCases,
  int64,
  maxDiff,
  SEQ2SEQ_CASES,
  smallSeq2Seq,
  sourceTokenizer,
  targetTokenizer,
} from '../helpers/seq2seq-onnx';
import { serveCli } from '../helpers/serve-cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-onnx-seq2seq-'));
const cases = SEQ2SEQ_CASES;

const { fileOf, models } = exportedCases(cases, tmp, smallSeq2Seq);

// Sources of lengths 3, 6, 1 and 4 padded into one batch; targets of lengths 4, 1, 2 and 3.
const SOURCES = ['abc', 'ghij a', 'j', 'd ef'];
const TARGETS = ['2026', '7', '11', '-05'];

function batchOf(model: Seq2Seq) {
  return pairBatch(
    SOURCES.map((s) => sourceTokenizer.encode(s)),
    TARGETS.map((t) => targetTokenizer.encode(t)),
    model.spec.bos,
    model.spec.eos,
  );
}

const translations = (ts: Translation[]) =>
  ts.map((t) => t.hypotheses.map((h) => ({ text: h.text, tokens: h.tokens })));

function expectSameTranslations(got: Translation[], want: Translation[]): void {
  expect(translations(got)).toEqual(translations(want));
  got.forEach((t, i) =>
    t.hypotheses.forEach((h, k) => {
      const w = want[i].hypotheses[k];
      expect(Math.abs(h.score - w.score)).toBeLessThan(1e-4);
      h.attention.forEach((row, j) => expect(maxDiff(row, w.attention[j])).toBeLessThan(1e-4));
    }),
  );
}

describe.each(cases)('Seq2Seq ONNX export: $name', (c) => {
  it('the encoder gives the native memory, mask and initial decoder state on a padded batch', async () => {
    const model = models.get(c)!;
    const batch = batchOf(model);
    const { batch: B, sourceSteps: S } = batch;
    const He = model.encoderSize;
    const session = await ort.InferenceSession.create(seq2seqOnnxPaths(fileOf(c)).encoder);
    const got = await session.run({
      source: int64(batch.source, [S, B]),
      source_lengths: int64(batch.sourceLengths, [B]),
    });
    const want = model.encode(batch, false);
    // memory is batch-major [B, S, He]; the native states are time-major [S, B, He].
    expect(got.memory.dims).toEqual([B, S, He]);
    const memory = got.memory.data as Float32Array;
    const timeMajor = new Float32Array(S * B * He);
    for (let s = 0; s < S; s++) {
      for (let b = 0; b < B; b++) {
        timeMajor.set(memory.subarray((b * S + s) * He, (b * S + s + 1) * He), (s * B + b) * He);
      }
    }
    expect(maxDiff(timeMajor, want.states)).toBeLessThan(1e-4);
    expect(maxDiff(got.h0.data as Float32Array, want.initial.h)).toBeLessThan(1e-4);
    if (want.initial.c) {
      expect(maxDiff(got.c0.data as Float32Array, want.initial.c)).toBeLessThan(1e-4);
    } else {
      expect(session.outputNames).not.toContain('c0');
    }
    const mask = Array.from(got.mask.data as Uint8Array);
    expect(mask).toEqual(
      Array.from({ length: B * S }, (_, i) =>
        Number(i % S < batch.sourceLengths[Math.floor(i / S)]),
      ),
    );
    await session.release();
  });

  it('decoder steps give the native logits, attention and states, step after step', async () => {
    const model = models.get(c)!;
    const batch = batchOf(model);
    const { batch: B, sourceSteps: S, targetSteps: T, sourceLengths: lengths } = batch;
    const { hiddenSize: H, targetVocab: V, inputFeeding } = model.spec;
    const files = seq2seqOnnxPaths(fileOf(c));
    const encoder = await ort.InferenceSession.create(files.encoder);
    const decoder = await ort.InferenceSession.create(files.decoder);
    const enc = await encoder.run({
      source: int64(batch.source, [S, B]),
      source_lengths: int64(batch.sourceLengths, [B]),
    });
    const carried = (h: ort.Tensor, c?: ort.Tensor, feed?: ort.Tensor) => ({
      h0: h,
      ...(c ? { c0: c } : {}),
      ...(inputFeeding ? { feed0: feed! } : {}),
    });
    let feeds: Record<string, ort.Tensor> = carried(
      enc.h0,
      enc.c0,
      new ort.Tensor('float32', new Float32Array(B * H), [1, B, H]),
    );

    // The native reference: the model's own layers, one decoder step at a time.
    const { states, initial } = model.encode(batch, false);
    let state = { h: initial.h.slice(), ...(initial.c ? { c: initial.c.slice() } : {}) };
    let feed = new Float32Array(B * H);
    const E = model.spec.embeddingSize;
    for (let t = 0; t < T; t++) {
      const ids = batch.targetIn.slice(t * B, (t + 1) * B);
      const emb = model.targetEmbedding.forward(ids);
      const x = inputFeeding ? new Float32Array(B * (E + H)) : emb.slice();
      if (inputFeeding) {
        for (let b = 0; b < B; b++) {
          x.set(emb.subarray(b * E, (b + 1) * E), b * (E + H));
          x.set(feed.subarray(b * H, (b + 1) * H), b * (E + H) + E);
        }
      }
      const step = model.decoder.forward(x, { steps: 1, batch: B, state });
      const att = model.attention.forward(step.output, states, {
        steps: 1,
        sourceSteps: S,
        batch: B,
        lengths,
      });
      const logits = model.output.forward(att.output);

      const got = await decoderStep(decoder, ids, feeds, enc);
      expect(got.logits.dims).toEqual([1, B, V]);
      expect(got.attention.dims).toEqual([1, B, S]);
      expect(maxDiff(got.logits.data as Float32Array, logits)).toBeLessThan(1e-4);
      expect(maxDiff(got.attention.data as Float32Array, att.weights)).toBeLessThan(1e-4);
      expect(maxDiff(got.hT.data as Float32Array, step.state.h)).toBeLessThan(1e-4);
      if (step.state.c)
        expect(maxDiff(got.cT.data as Float32Array, step.state.c)).toBeLessThan(1e-4);
      if (inputFeeding)
        expect(maxDiff(got.feedT.data as Float32Array, att.output)).toBeLessThan(1e-4);
      // Padded source positions get exactly no attention.
      const a = got.attention.data as Float32Array;
      for (let b = 0; b < B; b++) {
        for (let s = lengths[b]; s < S; s++) expect(a[b * S + s]).toBe(0);
      }
      state = { h: step.state.h.slice(), ...(step.state.c ? { c: step.state.c.slice() } : {}) };
      feed = att.output.slice();
      feeds = carried(got.hT, got.cT, got.feedT);
    }
    await encoder.release();
    await decoder.release();
  });

  it('OnnxSeq2Seq translates exactly as the native model: greedy, beam search and sampling', async () => {
    const model = models.get(c)!;
    const onnx = await OnnxSeq2Seq.load(fileOf(c), { threads: 1 });
    try {
      expect(onnx.spec).toEqual(model.spec);
      const sources = [...SOURCES, 'abcdefghij abcdefghij', 'hhh'];
      for (const options of [
        {},
        { beam: 4, nBest: 3 },
        { beam: 3, maxLength: 5, lengthPenalty: 1 },
        { temperature: 0.8, topK: 5, seed: 3 },
      ]) {
        expectSameTranslations(
          await onnx.translate(sources, options),
          await model.translate(sources, options),
        );
      }
    } finally {
      await onnx.close();
    }
  });
});

describe('Seq2Seq ONNX export', () => {
  it('every exported file passes the reference checker (python3-onnx, full_check)', async () => {
    const opset14 = path.join(tmp, 'opset14.onnx');
    await exportSeq2SeqOnnx(models.get(cases[1])!, opset14, { opset: 14 });
    const files = [...cases.map(fileOf), opset14].flatMap((f) => {
      const p = seq2seqOnnxPaths(f);
      return [p.encoder, p.decoder];
    });
    expectOnnxChecked(files);
  });

  it('names the two files after the export name, and finds them from either', () => {
    const want = { encoder: '/m/dates.encoder.onnx', decoder: '/m/dates.decoder.onnx' };
    for (const name of ['/m/dates.onnx', '/m/dates', want.encoder, want.decoder]) {
      expect(seq2seqOnnxPaths(name)).toEqual(want);
    }
  });

  it('rejects a model that is not a Seq2Seq and bad opsets', async () => {
    const model = models.get(cases[0])!;
    expect(() => buildSeq2SeqOnnx({} as Seq2Seq)).toThrow(/model must be a Seq2Seq/);
    expect(() => buildSeq2SeqOnnx(model, { opset: 13 })).toThrow(/opset must be .* \[14, 17\]/);
    await expect(exportSeq2SeqOnnx(model, path.join(tmp, 'no-such-dir', 'x.onnx'))).rejects.toThrow(
      /cannot write .*no-such-dir/,
    );
  });
});

describe('OnnxSeq2Seq.load on bad files', () => {
  it('names a missing file', async () => {
    await expect(OnnxSeq2Seq.load(path.join(tmp, 'missing.onnx'))).rejects.toThrow(
      /cannot read .*missing\.encoder\.onnx/,
    );
  });

  it('rejects two files that were not exported together', async () => {
    const [a, b] = [cases[0], cases[3]].map((c) => seq2seqOnnxPaths(fileOf(c)));
    const mixed = seq2seqOnnxPaths(path.join(tmp, 'mixed.onnx'));
    fs.copyFileSync(a.encoder, mixed.encoder);
    fs.copyFileSync(b.decoder, mixed.decoder);
    await expect(OnnxSeq2Seq.load(mixed.encoder)).rejects.toThrow(
      /mixed\.decoder\.onnx: it was not exported together with .*mixed\.encoder\.onnx/,
    );
  });

  it('rejects a language model, and the language-model loader rejects a seq2seq half', async () => {
    const lm = path.join(tmp, 'lm.onnx');
    await exportOnnx(new LanguageModel({ vocabSize: 9, hiddenSize: 8, seed: 1 }), lm, {
      kind: 'step',
    });
    const pair = seq2seqOnnxPaths(path.join(tmp, 'lm-pair.onnx'));
    fs.copyFileSync(lm, pair.encoder);
    fs.copyFileSync(lm, pair.decoder);
    await expect(OnnxSeq2Seq.load(pair.encoder)).rejects.toThrow(
      /lm-pair\.encoder\.onnx: it holds a 'step' model, not the encoder of a sequence-to-sequence model/,
    );
    await expect(OnnxGenerator.load(seq2seqOnnxPaths(fileOf(cases[0])).decoder)).rejects.toThrow(
      /it holds the decoder of a sequence-to-sequence model, not a language model; load it with OnnxSeq2Seq/,
    );
  });

  it('rejects a model exported without vocabularies', async () => {
    const file = path.join(tmp, 'numeric.onnx');
    await exportSeq2SeqOnnx(
      new Seq2Seq({ sourceVocab: 5, targetVocab: 6, bos: 1, eos: 2, hiddenSize: 8, seed: 1 }),
      file,
    );
    await expect(OnnxSeq2Seq.load(file)).rejects.toThrow(/exported without its source vocabulary/);
  });

  it('gives bad translate options the native errors', async () => {
    const onnx = await OnnxSeq2Seq.load(fileOf(cases[0]), { threads: 1 });
    try {
      await expect(onnx.translate(['abc'], { beam: 0 })).rejects.toThrow(/beam must be an integer/);
      await expect(onnx.translate(['abc'], { beam: 2, nBest: 3 })).rejects.toThrow(/nBest/);
      await expect(onnx.translate(['abc', ''])).rejects.toThrow(/sources\[1\] is empty/);
      await expect(onnx.translate(['abx'])).rejects.toThrow(/sources\[0\]: character "x"/);
    } finally {
      await onnx.close();
    }
  });
});

describe('POST /v1/translate', () => {
  const onnxCase = cases[1];
  let onnx: OnnxSeq2Seq;
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    onnx = await OnnxSeq2Seq.load(fileOf(onnxCase), { threads: 1 });
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await onnx.close();
  });

  const post = async (server: RunningServer, route: string, body: unknown) => {
    const r = await fetch(`${server.url}${route}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it.each(['native', 'onnx'] as const)(
    'translates with a %s model as translate does',
    async (kind) => {
      const model = kind === 'onnx' ? onnx : models.get(onnxCase)!;
      const server = await startServer(model, { port: 0 });
      servers.push(server);
      const sources = ['abc', 'ghij a'];
      const r = await post(server, '/v1/translate', { sources, beam: 3, n_best: 2, max_length: 8 });
      expect(r.status).toBe(200);
      const want = await models
        .get(onnxCase)!
        .translate(sources, { beam: 3, nBest: 2, maxLength: 8 });
      expect(r.body.translations).toEqual(
        want.map((t) => ({
          text: t.text,
          hypotheses: t.hypotheses.map((h) => ({
            text: h.text,
            score: expect.closeTo(h.score, 4),
          })),
        })),
      );
      const info = (await (await fetch(`${server.url}/v1/model`)).json()) as Record<
        string,
        unknown
      >;
      expect(info).toMatchObject({ backend: kind, kind: 'seq2seq', config: model.spec });
    },
  );

  it('answers bad requests with 400 and a message naming the field', async () => {
    const server = await startServer(onnx, { port: 0, maxPrompts: 2 });
    servers.push(server);
    const cases: [unknown, RegExp][] = [
      ['{"sources": [', /^body: malformed JSON/],
      [{}, /^sources must be an array of strings, got undefined/],
      [{ sources: 'abc' }, /^sources must be an array of strings, got string/],
      [{ sources: [] }, /^sources must hold 1 to 2 strings, got 0/],
      [{ sources: ['a', 'b', 'c'] }, /^sources must hold 1 to 2 strings, got 3/],
      [{ sources: ['abc', 7] }, /^sources\[1\] must be a string, got number/],
      [{ sources: ['abc', ''] }, /^sources\[1\] is empty/],
      [{ sources: ['abx'] }, /^sources\[0\]: character "x" \(U\+0078\)/],
      [{ sources: ['abc'], beam: 0 }, /^beam must be an integer in \[1, 16\], got 0/],
      [{ sources: ['abc'], beam: '2' }, /^beam must be a number, got string/],
      [{ sources: ['abc'], beam: 2, n_best: 3 }, /^n_best must be an integer in \[1, 2\], got 3/],
      [{ sources: ['abc'], max_length: 1e9 }, /^max_length must be an integer in \[1, 2048\]/],
      [{ sources: ['abc'], length_penalty: -1 }, /^length_penalty must be a finite number/],
      [
        { sources: ['abc'], beam_size: 2 },
        /^unknown field 'beam_size'; the fields are sources, beam/,
      ],
    ];
    for (const [body, message] of cases) {
      const r = await post(server, '/v1/translate', body);
      expect([r.status, r.body.error]).toEqual([400, expect.stringMatching(message)]);
    }
    const lm = await post(server, '/v1/generate', { prompt: 'abc' });
    expect([lm.status, lm.body.error]).toEqual([
      404,
      '/v1/generate: this server runs a sequence-to-sequence model; use POST /v1/translate',
    ]);
  });

  it('rnnkit export writes both files and rnnkit serve answers /v1/translate', async () => {
    const saved = path.join(tmp, 'cli.safetensors');
    await models.get(onnxCase)!.save(saved);
    const out = path.join(tmp, 'cli.onnx');
    const exported = runCli(['export', '--model', saved, '--out', out]);
    expect(exported.stderr).toBe('');
    expect(exported.stdout).toMatch(
      /exported Seq2Seq\(.* to .*cli\.encoder\.onnx and .*cli\.decoder\.onnx \(opset 17/,
    );
    const withKind = runCli(['export', '--model', saved, '--out', out, '--kind', 'step']);
    expect([withKind.status, withKind.stderr]).toEqual([
      2,
      expect.stringMatching(/--kind is for language models/),
    ]);

    const server = await serveCli(['--model', out, '--threads', '1']);
    try {
      const r = await fetch(`${server.url}/v1/translate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ sources: ['abc'] }),
      });
      const want = await models.get(onnxCase)!.translate(['abc']);
      expect(((await r.json()) as { translations: { text: string }[] }).translations[0].text).toBe(
        want[0].text,
      );
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
