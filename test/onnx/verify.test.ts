// Verified .onnx files: every export records a CRC-32C of each initializer in metadata_props;
// loading refuses a changed byte, non-finite weights and spec fields of the wrong type, naming the
// initializer or field, and files without checksums (older exports) still load.
import { onnx } from 'onnx-proto';
import { describe, expect, it } from 'vitest';

import {
  CharTokenizer,
  LanguageModel,
  Seq2Seq,
  buildOnnx,
  buildSeq2SeqOnnx,
  readOnnxModel,
  readOnnxSeq2Seq,
} from '../../lib/index';

const model = () =>
  new LanguageModel({
    tokenizer: CharTokenizer.fromText('abcdefghij klmnop.'),
    cell: 'gru',
    hiddenSize: 8,
    embeddingSize: 6,
    numLayers: 2,
    seed: 4,
  });

/** Decodes, edits and re-encodes an ONNX file. */
function edit(bytes: Uint8Array, f: (m: onnx.ModelProto) => void): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  f(m);
  return onnx.ModelProto.encode(m).finish();
}

const setMeta = (m: onnx.ModelProto, key: string, value: string | null) => {
  m.metadataProps = m.metadataProps.filter((p) => p.key !== key);
  if (value !== null) m.metadataProps.push(onnx.StringStringEntryProto.create({ key, value }));
};

/** Byte offsets of the raw data of the first float initializer in the encoded file. */
function rawDataOffset(bytes: Uint8Array): { name: string; at: number } {
  const m = onnx.ModelProto.decode(bytes);
  const init = m.graph!.initializer.find((t) => (t.rawData?.length ?? 0) > 16)!;
  const raw = init.rawData!;
  const at = Buffer.from(bytes).indexOf(Buffer.from(raw));
  return { name: init.name!, at };
}

describe('ONNX checksums', () => {
  it('records one per initializer and refuses a flipped byte, naming the initializer', () => {
    const bytes = buildOnnx(model(), { kind: 'step' });
    const m = onnx.ModelProto.decode(bytes);
    const sums = JSON.parse(m.metadataProps.find((p) => p.key === 'checksums')!.value!);
    expect(sums.algorithm).toBe('crc32c');
    expect(Object.keys(sums.tensors).sort()).toEqual(
      m.graph!.initializer.map((t) => t.name).sort(),
    );
    expect(readOnnxModel(bytes, 'ok.onnx').spec.numLayers).toBe(2);

    const { name, at } = rawDataOffset(bytes);
    expect(at).toBeGreaterThan(0);
    const bad = Uint8Array.from(bytes);
    bad[at + 5] ^= 0x01;
    expect(() => readOnnxModel(bad, 'bad.onnx')).toThrow(
      new RegExp(`bad\\.onnx: tensor '${name.replace(/\./g, '\\.')}' fails its checksum`),
    );
  });

  it('refuses a changed graph or metadata', () => {
    const bytes = buildOnnx(model(), { kind: 'step' });
    const tokenizer = edit(bytes, (m) => {
      const p = m.metadataProps.find((q) => q.key === 'tokenizer')!;
      p.value = p.value!.replace('"k"', '"z"');
    });
    expect(() => readOnnxModel(tokenizer, 't.onnx')).toThrow(
      /t\.onnx: its graph or metadata fails its checksum/,
    );
    const node = edit(bytes, (m) => (m.graph!.node[1].name = 'renamed'));
    expect(() => readOnnxModel(node, 'n.onnx')).toThrow(/graph or metadata fails its checksum/);
  });

  it('loads a file without checksums (an older export)', () => {
    const old = edit(buildOnnx(model(), { kind: 'sequence' }), (m) =>
      setMeta(m, 'checksums', null),
    );
    expect(readOnnxModel(old, 'old.onnx').kind).toBe('sequence');
  });

  it('refuses a seq2seq part with a changed byte', () => {
    const s2s = new Seq2Seq({
      sourceVocab: 7,
      targetVocab: 6,
      embeddingSize: 4,
      hiddenSize: 6,
      bos: 1,
      eos: 2,
      seed: 2,
    });
    const { decoder } = buildSeq2SeqOnnx(s2s);
    expect(readOnnxSeq2Seq(decoder, 'dec.onnx', 'decoder').part).toBe('decoder');
    const { at } = rawDataOffset(decoder);
    const bad = Uint8Array.from(decoder);
    bad[at] ^= 0x80;
    expect(() => readOnnxSeq2Seq(bad, 'dec.onnx', 'decoder')).toThrow(/fails its checksum/);
  });
});

describe('ONNX weights and spec', () => {
  it('refuses non-finite initializers naming the initializer and index, unless allowed', () => {
    const m = model();
    m.decoder.weight.data[3 * 8 + 1] = Infinity;
    const bytes = buildOnnx(m, { kind: 'step' });
    expect(() => readOnnxModel(bytes, 'inf.onnx')).toThrow(
      /inf\.onnx: tensor '[\w.]+' holds Infinity at index \[/,
    );
    expect(readOnnxModel(bytes, 'inf.onnx', { allowNonFinite: true }).kind).toBe('step');
  });

  it('names spec fields of the wrong type', () => {
    const bytes = buildOnnx(model(), { kind: 'step' });
    const spec = JSON.parse(
      onnx.ModelProto.decode(bytes).metadataProps.find((p) => p.key === 'spec')!.value!,
    );
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ residual: 'yes' }, /'residual' must be true or false, got "yes"/],
      [{ tieWeights: null }, /'tieWeights' must be true or false/],
      [{ dropout: 2 }, /'dropout' must be a number in \[0, 1\)/],
      [{ cell: null }, /'cell' must be one of/],
    ];
    for (const [change, message] of cases) {
      const bad = edit(bytes, (p) => {
        setMeta(p, 'checksums', null);
        setMeta(p, 'spec', JSON.stringify({ ...spec, ...change }));
      });
      expect(() => readOnnxModel(bad, 'spec.onnx'), JSON.stringify(change)).toThrow(message);
    }
  });
});
