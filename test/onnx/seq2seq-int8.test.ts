// The int8 ONNX export of a Seq2Seq, against rnnkit's int8 model: onnxruntime's encoder against
// rnnkit's encoder (float32 on the int8 weights, as rnnkit runs it) and its keys against the int8
// product computed here; the decoder step, fed the tokens of rnnkit's native int8 greedy search,
// against that search's tokens, attention and scores; the reference checker, the initializers'
// types and the file's size; greedy translation through OnnxSeq2Seq and `rnnkit serve`.
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

import {
  OnnxSeq2Seq,
  Random,
  Seq2Seq,
  buildSeq2SeqOnnx,
  exportSeq2SeqOnnx,
  readOnnxSeq2Seq,
  seq2seqOnnxPaths,
  sourceBatch,
  type SourceBatch,
} from '../../lib/index';
import { int8Values } from '../../lib/nn/quantize';
import { runCli } from '../helpers/cli';
import { quantizeRow } from '../helpers/int8';
import { expectOnnxChecked } from '../helpers/onnx-checker';
import {
  SEQ2SEQ_CASES,
  decoderStep,
  exportedCases,
  smallSeq2Seq,
  sourceTokenizer,
  maxDiff,
  int64,
  type Seq2SeqCase,
} from '../helpers/seq2seq-onnx';
import { serveCli } from '../helpers/serve-cli';
import { tmpDir } from '../helpers/tmp';

const tmp = tmpDir();
type Case = Seq2SeqCase;

// 14 target tokens: without input feeding an embedding of 8 (V <= 2E) feeds the decoder's layer 0
// through the table of each token's pre-activations, one of 5 through int8 products, as the
// native search does; with input feeding [embedding; feed] is always one quantized row.
const cases: Case[] = [
  ...SEQ2SEQ_CASES,
  {
    name: 'general lstm unidirectional E 5',
    config: { attention: 'general', bidirectional: false, embeddingSize: 5 },
  },
  {
    name: 'additive gru bidirectional input-feeding',
    config: { attention: 'additive', cell: 'gru', inputFeeding: true },
  },
];

const { fileOf, models } = exportedCases(cases, tmp, (config) =>
  smallSeq2Seq({ hiddenSize: 16, ...config }).quantize('int8'),
);

// Batch 1, and sources of lengths 3, 6, 1 and 4 padded into one batch.
const BATCHES = [['ghij a'], ['abc', 'ghij a', 'j', 'd ef']];
const batchOf = (texts: string[]) => sourceBatch(texts.map((t) => sourceTokenizer.encode(t)));

async function sessions(c: Case) {
  const files = seq2seqOnnxPaths(fileOf(c));
  return {
    encoder: await ort.InferenceSession.create(files.encoder),
    decoder: await ort.InferenceSession.create(files.decoder),
  };
}

const encoderFeeds = (batch: SourceBatch) => ({
  source: int64(batch.source, [batch.sourceSteps, batch.batch]),
  source_lengths: int64(batch.sourceLengths, [batch.batch]),
});

/** log_softmax of a row of logits, in double. */
function logSoftmax(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  return Float64Array.from(row, (x) => x - lse);
}

describe.each(cases)('int8 Seq2Seq ONNX: $name', (c) => {
  it('the encoder gives rnnkit’s memory and initial state, and keys in int8 products', async () => {
    const model = models.get(c)!;
    const { encoder } = await sessions(c);
    const He = model.encoderSize;
    for (const texts of BATCHES) {
      const batch = batchOf(texts);
      const { batch: B, sourceSteps: S } = batch;
      const got = await encoder.run(encoderFeeds(batch));
      const want = model.encode(batch, false);
      const memory = got.memory.data as Float32Array;
      // memory is [B, S, He]; rnnkit's states [S, B, He]. rnnkit's encoder and bridge run in
      // float32 on the int8 weights widened, which the file's graph computes from them.
      let worst = 0;
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < S; s++) {
          const row = memory.subarray((b * S + s) * He, (b * S + s + 1) * He);
          const at = (s * B + b) * He;
          worst = Math.max(worst, maxDiff(row, want.states.subarray(at, at + He)));
        }
      }
      worst = Math.max(worst, maxDiff(got.h0.data as Float32Array, want.initial.h));
      if (want.initial.c) {
        worst = Math.max(worst, maxDiff(got.c0.data as Float32Array, want.initial.c));
      }
      // Float32 roundings apart (measured at most 2.4e-7 over these cases).
      expect(worst).toBeLessThan(1e-5);

      // keys: each memory row quantized (quantize_row) times the int8 key matrix, as the native
      // search's PackedAttention::keys; dot attention reads the memory itself.
      const keys = got.keys.data as Float32Array;
      const name = { dot: null, general: 'score_weight', additive: 'key_weight' }[
        model.spec.attention
      ];
      if (!name) {
        expect(keys).toEqual(memory);
        continue;
      }
      const t = model.attention.tensors()[name];
      const N = t.shape[0];
      const scales = model.quantization!.scales[`attention.${name}`];
      const wq = int8Values(t.data, scales);
      let int8Worst = 0;
      for (let r = 0; r < B * S; r++) {
        const row = memory.subarray(r * He, (r + 1) * He);
        const a = quantizeRow(row);
        for (let n = 0; n < N; n++) {
          let sum = 0;
          let float = 0;
          let bound = 0;
          for (let k = 0; k < He; k++) {
            sum += a.q[k] * wq[n * He + k];
            float += row[k] * t.data[n * He + k];
            bound += (Math.abs(t.data[n * He + k]) * a.scale) / 2;
          }
          const key = keys[r * N + n];
          int8Worst = Math.max(int8Worst, Math.abs(key - Math.fround(a.scale * scales[n]) * sum));
          // Only the activations' rounding separates the int8 product from float32's.
          expect(Math.abs(key - float)).toBeLessThanOrEqual(bound + 1e-6);
        }
      }
      // The same int32 sums, scaled in another order (measured at most 4.4e-8).
      expect(int8Worst).toBeLessThan(1e-6);
    }
    await encoder.release();
  });

  it('decoder steps fed rnnkit’s int8 greedy tokens give its tokens, attention and scores', async () => {
    const model = models.get(c)!;
    const { encoder, decoder } = await sessions(c);
    const { hiddenSize: H, targetVocab: V, inputFeeding, eos, bos } = model.spec;
    const T = 10;
    for (const texts of BATCHES) {
      const batch = batchOf(texts);
      const { batch: B, sourceSteps: S } = batch;
      const search = await model.beamSearch(batch, {
        beam: 1,
        nBest: 1,
        maxLength: T,
        lengthPenalty: 0,
      });
      const enc = await encoder.run(encoderFeeds(batch));
      let state: Record<string, ort.Tensor> = {
        h0: enc.h0,
        ...(enc.c0 ? { c0: enc.c0 } : {}),
        ...(inputFeeding
          ? { feed0: new ort.Tensor('float32', new Float32Array(B * H), [1, B, H]) }
          : {}),
      };
      const ids = new Int32Array(B).fill(bos);
      const score = new Float64Array(B);
      let attentionWorst = 0;
      let same = 0;
      let all = 0;
      for (let t = 0; t < T && search.lengths.some((n) => n >= t); t++) {
        const got = await decoderStep(decoder, ids, state, enc);
        const logits = got.logits.data as Float32Array;
        const attention = got.attention.data as Float32Array;
        for (let b = 0; b < B; b++) {
          const n = search.lengths[b];
          // Row b emitted n tokens, then (when n < T) the end token at step n.
          if (t > n) continue;
          const want = t < n ? search.tokens[b * T + t] : eos;
          const row = logits.subarray(b * V, (b + 1) * V);
          const lp = logSoftmax(row);
          score[b] += lp[want];
          all++;
          if (row.indexOf(Math.max(...row)) === want) same++;
          if (t < n) {
            const at = (b * T + t) * S;
            attentionWorst = Math.max(
              attentionWorst,
              maxDiff(attention.subarray(b * S, (b + 1) * S), search.align.subarray(at, at + S)),
            );
          }
        }
        for (let b = 0; b < B; b++) {
          ids[b] = t < search.lengths[b] ? search.tokens[b * T + t] : eos;
        }
        state = {
          h0: got.hT,
          ...(got.cT ? { c0: got.cT } : {}),
          ...(inputFeeding ? { feed0: got.feedT } : {}),
        };
      }
      // onnxruntime's integer sums are the native ones, so the steps agree to float32 rounding
      // (measured: attention 6e-8, summed log-probabilities 1.2e-6 at most; 300 of 300 greedy
      // tokens equal). An activation within that rounding of a half quantization step would
      // round to another q and move its row by about scale_a * |w| (1e-3); none does here.
      expect(attentionWorst).toBeLessThan(1e-5);
      expect(maxDiff(score, search.scores)).toBeLessThan(1e-5);
      expect(same).toBe(all);
    }
    await encoder.release();
    await decoder.release();
  });
});

describe('int8 Seq2Seq ONNX export', () => {
  it('every file passes the reference checker (python3-onnx, full_check)', async () => {
    const opset14 = path.join(tmp, 'opset14.onnx');
    await exportSeq2SeqOnnx(models.get(cases[1])!, opset14, { opset: 14 });
    expectOnnxChecked(
      [...cases.map(fileOf), opset14].flatMap((f) => Object.values(seq2seqOnnxPaths(f))),
    );
  });

  it('holds every quantized matrix as int8 and multiplies the decoder step in integers', () => {
    const model = models.get(cases[0])!;
    const files = buildSeq2SeqOnnx(model);
    const { INT8, FLOAT } = onnx.TensorProto.DataType;
    const graphs = Object.fromEntries(
      Object.entries(files).map(([part, bytes]) => [part, onnx.ModelProto.decode(bytes)]),
    );
    const types = Object.fromEntries(
      Object.values(graphs).flatMap((m) => m.graph!.initializer.map((t) => [t.name, t.dataType])),
    );
    for (const m of model.quantizedMatrices()) {
      expect(types[m.name], m.name).toBe(INT8);
      expect(types[`${m.name}.scale`], m.name).toBe(FLOAT);
    }
    for (const name of ['source_embedding.weight', 'target_embedding.weight', 'output.bias']) {
      expect(types[name], name).toBe(FLOAT);
    }
    const ops = (part: string) => new Set(graphs[part].graph!.node.map((n) => n.opType));
    // The encoder runs ONNX's LSTM on the widened weights, as rnnkit's encoder runs in float32;
    // its keys are an int8 product (none for dot attention, whose keys are the memory).
    expect(ops('encoder').has('LSTM')).toBe(true);
    expect(ops('decoder').has('MatMulInteger')).toBe(true);
    for (const op of ['LSTM', 'GRU', 'RNN', 'Gemm']) expect(ops('decoder').has(op)).toBe(false);
    for (const m of Object.values(graphs)) {
      expect(m.metadataProps.find((p) => p.key === 'weights')?.value).toBe('int8');
    }
    const general = onnx.ModelProto.decode(buildSeq2SeqOnnx(models.get(cases[1])!).encoder);
    expect(general.graph!.node.some((n) => n.opType === 'MatMulInteger')).toBe(true);
  });

  it('holds the matrices in a quarter of float32’s bytes', () => {
    const float = smallSeq2Seq({
      embeddingSize: 16,
      hiddenSize: 128,
      seed: 2,
    });
    const int8 = float.quantize('int8');
    const files = (m: Seq2Seq) => Object.values(buildSeq2SeqOnnx(m));
    const size = (m: Seq2Seq) => files(m).reduce((n, bytes) => n + bytes.length, 0);
    // One byte per matrix entry in the file, where float32 takes four.
    const int8Bytes = files(int8)
      .flatMap((bytes) => onnx.ModelProto.decode(bytes).graph!.initializer)
      .filter((t) => t.dataType === onnx.TensorProto.DataType.INT8)
      .reduce((n, t) => n + t.rawData!.length, 0);
    const entries = int8.quantizedMatrices().reduce((n, m) => n + m.data.length, 0);
    expect(int8Bytes).toBe(entries);
    // Measured: 234,259 bytes against 812,812 (0.288): the float embeddings and biases, and a
    // float scale per row (4 bytes beside the 64 of a row of the encoder's weight_hh) add the rest.
    const ratio = size(int8) / size(float);
    expect(ratio).toBeGreaterThan(0.25);
    expect(ratio).toBeLessThan(0.3);
  });

  it('reads back as weights int8; a bf16 model exports as the float32 graph of its values', async () => {
    const model = models.get(cases[2])!;
    const files = buildSeq2SeqOnnx(model);
    expect(readOnnxSeq2Seq(files.encoder, 'x.encoder.onnx', 'encoder').weights).toBe('int8');
    expect(readOnnxSeq2Seq(files.decoder, 'x.decoder.onnx', 'decoder').weights).toBe('int8');
    const edited = onnx.ModelProto.decode(files.decoder);
    edited.metadataProps = edited.metadataProps.filter((p) => p.key !== 'checksums');
    edited.metadataProps.find((p) => p.key === 'weights')!.value = 'int4';
    expect(() =>
      readOnnxSeq2Seq(onnx.ModelProto.encode(edited).finish(), 'e.decoder.onnx', 'decoder'),
    ).toThrow(/e\.decoder\.onnx: its metadata 'weights' is 'int4', expected float32 or int8/);

    const bf16 = smallSeq2Seq({
      embeddingSize: 8,
      hiddenSize: 16,
      attention: 'additive',
      seed: 3,
    }).quantize('bf16');
    const bf16Files = buildSeq2SeqOnnx(bf16);
    const decoder = onnx.ModelProto.decode(bf16Files.decoder);
    expect(decoder.graph!.node.some((n) => n.opType === 'LSTM')).toBe(true);
    expect(decoder.graph!.node.some((n) => n.opType === 'MatMulInteger')).toBe(false);
    expect(readOnnxSeq2Seq(bf16Files.decoder, 'b.decoder.onnx', 'decoder').weights).toBe('float32');
    // Its weights are the bfloat16 values, which rnnkit's bf16 search multiplies in float32.
    const file = path.join(tmp, 'bf16.onnx');
    await exportSeq2SeqOnnx(bf16, file);
    const onnxModel = await OnnxSeq2Seq.load(file, { threads: 1 });
    try {
      const sources = ['abc', 'ghij a', 'j', 'd ef'];
      const got = await onnxModel.translate(sources, { beam: 3 });
      const want = await bf16.translate(sources, { beam: 3 });
      expect(got.map((t) => t.text)).toEqual(want.map((t) => t.text));
    } finally {
      await onnxModel.close();
    }
  });
});

describe('int8 Seq2Seq ONNX through OnnxSeq2Seq and rnnkit serve', () => {
  it('greedy translations agree with rnnkit’s int8 translation', async () => {
    const model = smallSeq2Seq({
      embeddingSize: 16,
      hiddenSize: 64,
      attention: 'general',
      inputFeeding: true,
      seed: 5,
    }).quantize('int8');
    const file = path.join(tmp, 'agree.onnx');
    await exportSeq2SeqOnnx(model, file);
    const rng = new Random(9);
    const letters = 'abcdefghij ';
    const sources = Array.from({ length: 60 }, () =>
      Array.from(
        { length: 2 + Math.floor(rng.uniform() * 14) },
        () => letters[Math.floor(rng.uniform() * 10)],
      ).join(''),
    );
    const onnxModel = await OnnxSeq2Seq.load(file, { threads: 1 });
    try {
      expect(onnxModel.model.weights).toBe('int8');
      const options = { maxLength: 24 };
      const want = await model.translate(sources, options);
      const got = await onnxModel.translate(sources, options);
      let same = 0;
      let all = 0;
      want.forEach((w, i) => {
        const a = w.hypotheses[0].tokens;
        const b = got[i].hypotheses[0].tokens;
        for (let k = 0; k < a.length; k++) same += a[k] === b[k] ? 1 : 0;
        all += a.length;
      });
      const rows = want.filter((w, i) => w.text === got[i].text).length;
      // Measured: 1,440 of 1,440 tokens, 60 of 60 translations identical (the same integer sums;
      // a row could part only where a flipped activation rounding or a near tie changes a token).
      expect(same / all).toBeGreaterThanOrEqual(0.98);
      expect(rows).toBeGreaterThanOrEqual(57);
    } finally {
      await onnxModel.close();
    }
  });

  it('rnnkit export writes an int8 checkpoint as the int8 pair, and rnnkit serve translates with it', async () => {
    const model = models.get(cases[3])!;
    const saved = path.join(tmp, 'cli-int8.safetensors');
    await model.save(saved);
    const out = path.join(tmp, 'cli-int8.onnx');
    const r = runCli(['export', '--model', saved, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const server = await serveCli(['--model', out, '--threads', '1']);
    try {
      const sources = ['abc', 'ghij a', 'j'];
      const res = await fetch(`${server.url}/v1/translate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ sources }),
      });
      const body = (await res.json()) as { translations: { text: string }[] };
      const want = await model.translate(sources);
      expect(body.translations.map((t) => t.text)).toEqual(want.map((t) => t.text));
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
