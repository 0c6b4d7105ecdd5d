import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  type Tensor,
  writeFileAtomic,
  writeSafetensors,
} from '../../lib/checkpoint';

// Lets a test make the next file opened by writeFileAtomic fail while its data is written, the
// way a full disk does, which no real directory can be made to do on demand.
const faults = vi.hoisted(() => ({ nextWrite: undefined as Error | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const handle = await actual.open(...args);
      const error = faults.nextWrite;
      if (error !== undefined) {
        faults.nextWrite = undefined;
        handle.writeFile = () => Promise.reject(error);
      }
      return handle;
    },
  };
});

const work = mkdtempSync(path.join(tmpdir(), 'rnnkit-safetensors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let fileCount = 0;
function freshPath(): string {
  return path.join(work, `model-${fileCount++}.safetensors`);
}

const tensors: Record<string, Tensor> = {
  'lstm.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([0.5, -1.25, 3, 4, 5, 6]) },
  'embed.weight': { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
  ids: { dtype: 'I32', shape: [2, 2], data: new Int32Array([1, -2, 3, 1 << 29]) },
  scale: { dtype: 'F64', shape: [], data: new Float64Array([Math.PI]) },
  steps: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -2n, 2n ** 40n]) },
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
};
const metadata = { config: JSON.stringify({ hiddenSize: 8 }), format: 'pt', '10': 'ten' };

/** The 8-byte length, then the header text padded to a multiple of 8, then `data`. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0)): Buffer {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = Buffer.from(text.padEnd(Math.ceil(Buffer.byteLength(text) / 8) * 8, ' '));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

function headerOf(file: Buffer): { length: number; text: string } {
  const length = Number(file.readBigUInt64LE(0));
  return { length, text: file.subarray(8, 8 + length).toString('utf8') };
}

function valuesOf(tensor: Tensor): (number | bigint)[] {
  return [...tensor.data];
}

function expectSameTensors(actual: Record<string, Tensor>, expected: Record<string, Tensor>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, tensor] of Object.entries(expected)) {
    expect(actual[name].dtype).toBe(tensor.dtype);
    expect(actual[name].shape).toEqual(tensor.shape);
    expect(valuesOf(actual[name])).toEqual(valuesOf(tensor));
  }
}

describe('safetensors round trip', () => {
  it('writes and reads back every dtype, shape and the metadata', async () => {
    const file = freshPath();
    await writeSafetensors(file, tensors, metadata);
    const loaded = await readSafetensors(file);
    expectSameTensors(loaded.tensors, tensors);
    expect(loaded.tensors['lstm.weight'].data).toBeInstanceOf(Float32Array);
    expect(loaded.tensors.steps.data).toBeInstanceOf(BigInt64Array);
    expect(loaded.metadata).toEqual(metadata);
  });

  it('writes a deterministic, padded, name-sorted header and aligned data', () => {
    const bytes = serializeSafetensors(tensors, metadata);
    const reversed = Object.fromEntries(Object.entries(tensors).reverse());
    expect(serializeSafetensors(reversed, metadata)).toEqual(bytes);

    const { length, text } = headerOf(bytes);
    expect(length % 8).toBe(0);
    expect(text).toMatch(/^\{"__metadata__":\{"10":"ten","config":/);
    expect(text).toBe(text.trimEnd().padEnd(length, ' '));
    const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
    const names = Object.keys(header).filter((key) => key !== '__metadata__');
    expect(names).toEqual(['embed.weight', 'empty', 'ids', 'lstm.weight', 'scale', 'steps']);
    // 8-byte tensors come first, so each tensor starts at a multiple of its element size.
    expect(header.scale.data_offsets).toEqual([0, 8]);
    expect(header.steps.data_offsets).toEqual([8, 32]);
    expect(header['embed.weight'].data_offsets).toEqual([32, 44]);
    // F64 and I64 (8 + 24 bytes), then F32 and I32 (12 + 0 + 16 + 24 bytes), with no gaps.
    expect(bytes.length).toBe(8 + length + (8 + 24) + (12 + 0 + 16 + 24));
  });

  it('returns views into the buffer when aligned and copies when not', () => {
    const bytes = serializeSafetensors({ w: tensors['lstm.weight'] });
    const aligned = parseSafetensors(bytes, 'aligned.safetensors').tensors.w;
    expect(aligned.data.buffer).toBe(bytes.buffer);

    const shifted = Buffer.alloc(bytes.length + 1);
    bytes.copy(shifted, 1);
    const unaligned = parseSafetensors(shifted.subarray(1), 'shifted.safetensors').tensors.w;
    expect(unaligned.data.buffer).not.toBe(shifted.buffer);
    expect(valuesOf(unaligned)).toEqual([0.5, -1.25, 3, 4, 5, 6]);
  });

  it('rejects tensors and metadata that cannot be written, before touching the disk', async () => {
    const file = freshPath();
    const bad = (tensor: object) => writeSafetensors(file, { w: tensor as Tensor });
    await expect(bad({ dtype: 'F32', shape: [2, 2], data: new Float32Array(3) })).rejects.toThrow(
      'tensor "w": shape [2, 2] has 4 elements but data has 3',
    );
    await expect(bad({ dtype: 'F32', shape: [2], data: new Float64Array(2) })).rejects.toThrow(
      'tensor "w": dtype F32 needs data as a Float32Array',
    );
    await expect(bad({ dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) })).rejects.toThrow(
      'dtype "F8_E4M3" is not supported (F32, F64, F16, BF16, I8, I32, I64)',
    );
    await expect(bad({ dtype: 'F16', shape: [1], data: new Float32Array(1) })).rejects.toThrow(
      'tensor "w": dtype F16 needs data as a Uint16Array',
    );
    await expect(bad({ dtype: 'I32', shape: [-1], data: new Int32Array(1) })).rejects.toThrow(
      'shape must be an array of non-negative integers',
    );
    await expect(writeSafetensors(file, { __metadata__: tensors.empty })).rejects.toThrow(
      '"__metadata__" cannot be a tensor name',
    );
    await expect(
      writeSafetensors(file, tensors, { epoch: 3 as unknown as string }),
    ).rejects.toThrow('metadata["epoch"] must be a string');
    expect(readdirSync(work)).not.toContain(path.basename(file));
  });
});

describe('safetensors validation', () => {
  const f32 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = new Uint8Array(8);
  const valid = serializeSafetensors({ a: tensors['embed.weight'] });

  it.each([
    ['a file too short for the length field', Buffer.alloc(5), 'it is 5 bytes long, too short'],
    [
      'a header length beyond the file',
      Buffer.concat([Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]),
      'the header length 255 runs past the end of the file (2 bytes follow the length field)',
    ],
    ['a header that is not JSON', craft('{"a": '), 'the header is not valid UTF-8 JSON'],
    [
      'a header that is not UTF-8',
      craft('{"\u00ff":1}').fill(0xff, 10, 12),
      'the header is not valid UTF-8 JSON',
    ],
    ['a header that is not an object', craft([]), 'the header is not a JSON object'],
    [
      'an unsupported dtype',
      craft({ a: { ...f32, dtype: 'F8_E4M3', data_offsets: [0, 2] } }, new Uint8Array(2)),
      'tensor "a" has dtype "F8_E4M3"; rnnkit reads F32, F64, F16, BF16, I8, I32, I64',
    ],
    [
      'a misspelt dtype',
      craft({ a: { ...f32, dtype: 'float32' } }, eight),
      'tensor "a" has dtype "float32"; rnnkit reads',
    ],
    [
      'a bad shape',
      craft({ a: { ...f32, shape: [2.5] } }, eight),
      'tensor "a" has shape [2.5], not a list of non-negative integers',
    ],
    [
      'reversed data_offsets',
      craft({ a: { ...f32, data_offsets: [8, 0] } }, eight),
      'tensor "a" has data_offsets [8,0], not [begin, end] with begin <= end',
    ],
    [
      'a shape that disagrees with the offsets',
      craft({ a: { ...f32, shape: [3] } }, eight),
      'tensor "a": shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8',
    ],
    [
      'offsets beyond the data',
      craft({ a: f32 }, new Uint8Array(4)),
      'tensor "a" has data_offsets [0, 8] beyond the 4 bytes of data',
    ],
    [
      'overlapping tensors',
      craft({ a: f32, b: { ...f32, data_offsets: [4, 12] } }, new Uint8Array(12)),
      'tensors "a" and "b" overlap (data_offsets [0, 8] and [4, 12])',
    ],
    [
      'a gap between tensors',
      craft({ a: { ...f32, data_offsets: [4, 12] } }, new Uint8Array(12)),
      '4 bytes before tensor "a" belong to no tensor',
    ],
    [
      'trailing garbage',
      Buffer.concat([valid, Buffer.from('xyz')]),
      '3 bytes of trailing data follow the last tensor',
    ],
    [
      'metadata that is not a string map',
      craft({ __metadata__: { epoch: 3 } }),
      '__metadata__["epoch"] is not a string',
    ],
    [
      'a tensor entry that is not an object',
      craft({ a: 'F32' }),
      'tensor "a" is not described by an object',
    ],
  ])('rejects %s', async (_what, bytes, problem) => {
    const file = freshPath();
    writeFileSync(file, bytes);
    await expect(readSafetensors(file)).rejects.toThrow(
      `${file} is not a valid safetensors file: ${problem}`,
    );
  });

  it('accepts headers written by other tools: unpadded, spaced, any key order', () => {
    const header =
      '{ "b": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}, "a": ' +
      '{"dtype": "I32", "shape": [1], "data_offsets": [0, 4]} }';
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    const file = Buffer.concat([
      length,
      Buffer.from(header),
      Buffer.from(new Int32Array([7, 9]).buffer),
    ]);
    const { tensors: loaded } = parseSafetensors(file, 'other.safetensors');
    expect(valuesOf(loaded.a)).toEqual([7]);
    expect(valuesOf(loaded.b)).toEqual([9]);
  });

  it('names the file when it cannot be read', async () => {
    const missing = path.join(work, 'missing.safetensors');
    await expect(readSafetensors(missing)).rejects.toThrow(`cannot read ${missing}: ENOENT`);
  });
});

describe('atomic writes', () => {
  function tempLeftovers(dir: string): string[] {
    return readdirSync(dir).filter((name) => name.endsWith('.tmp'));
  }

  it('replaces an existing file and leaves no temporary file behind', async () => {
    const dir = mkdtempSync(path.join(work, 'replace-'));
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, { a: tensors.ids });
    await writeSafetensors(file, tensors, metadata);
    expectSameTensors((await readSafetensors(file)).tensors, tensors);
    await writeFileAtomic(path.join(dir, 'notes.txt'), 'Grüße\n');
    expect(readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('Grüße\n');
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('fails clearly when the directory does not exist', async () => {
    const file = path.join(work, 'no-such-dir', 'model.safetensors');
    await expect(writeSafetensors(file, tensors)).rejects.toThrow(`cannot write ${file}: ENOENT`);
  });

  it('fails clearly when the parent is a file', async () => {
    const parent = path.join(work, 'plain-file');
    writeFileSync(parent, 'x');
    const file = path.join(parent, 'model.safetensors');
    await expect(writeSafetensors(file, tensors)).rejects.toThrow(`cannot write ${file}: ENOTDIR`);
  });

  it('fails clearly when the target is a directory, leaving it and no temporary file', async () => {
    const dir = mkdtempSync(path.join(work, 'target-dir-'));
    const target = path.join(dir, 'model.safetensors');
    mkdirSync(target);
    writeFileSync(path.join(target, 'keep.txt'), 'keep');
    await expect(writeSafetensors(target, tensors)).rejects.toThrow(
      `cannot write ${target}: EISDIR`,
    );
    expect(readFileSync(path.join(target, 'keep.txt'), 'utf8')).toBe('keep');
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('leaves the existing file byte-identical when the disk fills mid-write', async () => {
    const dir = mkdtempSync(path.join(work, 'enospc-'));
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, { a: tensors.ids });
    const before = readFileSync(file);
    faults.nextWrite = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
    });
    const failure = writeSafetensors(file, tensors, metadata);
    await expect(failure).rejects.toThrow(`cannot write ${file}: ENOSPC: no space left on device`);
    await expect(failure).rejects.toHaveProperty('cause.code', 'ENOSPC');
    expect(readFileSync(file)).toEqual(before);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  // The save runs in a child process, which turns into the user nobody once it has loaded rnnkit
  // where the tests run as root (whom permissions do not stop), so that the directory's mode is
  // what refuses it.
  it('leaves the existing file byte-identical in a read-only directory', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rnnkit-readonly-'));
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, { a: tensors.ids });
    const before = readFileSync(file);
    chmodSync(dir, 0o555);
    const checkpoint = path.resolve(__dirname, '../../lib/checkpoint/index.ts');
    const script = `const { writeSafetensors } = require(${JSON.stringify(checkpoint)});
      if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
      writeSafetensors(${JSON.stringify(file)}, { b: { dtype: 'F32', shape: [1], data: new Float32Array(1) } })
        .then(() => process.stdout.write('saved'), (e) => process.stdout.write(e.message));`;
    try {
      const child = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
        encoding: 'utf8',
      });
      expect(child.stderr).toBe('');
      expect(child.stdout).toMatch(`cannot write ${file}: EACCES`);
    } finally {
      chmodSync(dir, 0o755);
    }
    expect(readFileSync(file)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    rmSync(dir, { recursive: true });
  });
});

// Reads the file with nothing but Python's standard library, as an independent implementation of
// the format would, prints what it found, and writes its own file back (unpadded header, default
// json spacing, reverse layout) with every value doubled.
const PYTHON_ROUND_TRIP = `
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, 'header not padded to 8 bytes'
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
formats = {'F32': 'f', 'F64': 'd', 'I32': 'i', 'I64': 'q'}
meta = header.pop('__metadata__')
found, end = {}, 0
for name, info in sorted(header.items(), key=lambda item: item[1]['data_offsets']):
    begin, stop = info['data_offsets']
    assert begin == end, 'data not contiguous'
    end = stop
    count = 1
    for dim in info['shape']:
        count *= dim
    values = struct.unpack('<%d%s' % (count, formats[info['dtype']]), data[begin:stop])
    found[name] = {'dtype': info['dtype'], 'shape': info['shape'], 'values': list(values)}
assert end == len(data), 'trailing data'
out_header, blobs, offset = {'__metadata__': meta}, [], 0
for name in sorted(found, reverse=True):
    t = found[name]
    blob = struct.pack('<%d%s' % (len(t['values']), formats[t['dtype']]), *[v * 2 for v in t['values']])
    out_header[name] = {'dtype': t['dtype'], 'shape': t['shape'], 'data_offsets': [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
text = json.dumps(out_header).encode('utf-8')
open(dst, 'wb').write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
print(json.dumps({'metadata': meta, 'tensors': found}))
`;

const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('interoperability', () => {
  it.skipIf(!hasPython)(
    'Python reads what we write, and we read what Python writes (needs python3)',
    async () => {
      const ours = freshPath();
      const theirs = freshPath();
      await writeSafetensors(ours, tensors, metadata);
      const seen = JSON.parse(
        execFileSync('python3', ['-c', PYTHON_ROUND_TRIP, ours, theirs], { encoding: 'utf8' }),
      ) as {
        metadata: Record<string, string>;
        tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
      };
      expect(seen.metadata).toEqual(metadata);
      for (const [name, tensor] of Object.entries(tensors)) {
        expect(seen.tensors[name]).toEqual({
          dtype: tensor.dtype,
          shape: tensor.shape,
          values: valuesOf(tensor).map(Number),
        });
      }

      const loaded = await readSafetensors(theirs);
      expect(loaded.metadata).toEqual(metadata);
      expect(valuesOf(loaded.tensors['lstm.weight'])).toEqual([1, -2.5, 6, 8, 10, 12]);
      expect(valuesOf(loaded.tensors.steps)).toEqual([2n, -4n, 2n ** 41n]);
      expect(loaded.tensors.scale.data[0]).toBe(2 * Math.PI);
      expect(loaded.tensors.empty.shape).toEqual([0, 4]);
    },
  );
});
