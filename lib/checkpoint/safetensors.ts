/**
 * The safetensors format (https://github.com/huggingface/safetensors), so that checkpoints load in
 * Python with `safetensors` or PyTorch:
 *
 *   u64 little-endian N | N bytes of UTF-8 JSON header | data
 *
 * The header maps each tensor name to `{ dtype, shape, data_offsets: [begin, end] }`, offsets
 * relative to the start of the data, plus an optional `"__metadata__"` map of strings to strings.
 * The data is the tensors' little-endian bytes, back to back, with no gaps or overlaps.
 *
 * Writing is deterministic: header keys in name order, the header padded with spaces to a multiple
 * of 8, and tensor data ordered by element size (largest first) then name, as the reference
 * implementation does, so that every tensor starts at an offset aligned to its element size.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileAtomic } from '../core/atomic';
import { bfloat16ToFloat32, float16ToFloat32 } from './float16';

/** 16-bit floats are held as their bit patterns (see float16.ts). */
const ARRAY_TYPES = {
  F32: Float32Array,
  F64: Float64Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I8: Int8Array,
  I32: Int32Array,
  I64: BigInt64Array,
} as const;

export type DType = keyof typeof ARRAY_TYPES;

/** The one constructor signature the array types share. */
interface ViewConstructor {
  readonly BYTES_PER_ELEMENT: number;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): Tensor['data'];
}

// Spelt out rather than InstanceType<...>, which would narrow to arrays over a plain ArrayBuffer and
// reject views into a Buffer or a SharedArrayBuffer.
interface ArrayFor {
  F32: Float32Array;
  F64: Float64Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I8: Int8Array;
  I32: Int32Array;
  I64: BigInt64Array;
}

/** A tensor as stored in a safetensors file: the typed array matching its dtype, in row-major order. */
export type Tensor = {
  [D in DType]: { dtype: D; shape: readonly number[]; data: ArrayFor[D] };
}[DType];

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/**
 * A floating-point tensor's values as float32: F32 data as it is, F16 and BF16 widened. `where`
 * names the tensor in the error any other dtype gets.
 */
export function float32Data(tensor: Tensor, where: string): Float32Array {
  if (tensor.dtype === 'F32') return tensor.data;
  if (tensor.dtype === 'F16') return float16ToFloat32(tensor.data);
  if (tensor.dtype === 'BF16') return bfloat16ToFloat32(tensor.data);
  throw new Error(`${where} has dtype ${tensor.dtype}, expected F32, F16 or BF16`);
}

const METADATA_KEY = '__metadata__';
const SUPPORTED = Object.keys(ARRAY_TYPES).join(', ');

function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(ARRAY_TYPES, value);
}

function isNaturalList(value: unknown): value is number[] {
  return (
    Array.isArray(value) &&
    value.every((dim: unknown) => Number.isSafeInteger(dim) && (dim as number) >= 0)
  );
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((count, dim) => count * dim, 1);
}

function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function assertLittleEndianHost(): void {
  // Tensor bytes are copied to and from typed arrays as they are, which is only right on a
  // little-endian machine (every platform Node ships prebuilt binaries for).
  if (endianness() !== 'LE') {
    throw new Error('safetensors: reading and writing need a little-endian host');
  }
}

function checkTensor(name: string, tensor: Tensor): void {
  if (name.length === 0 || name === METADATA_KEY) {
    throw new TypeError(`safetensors: ${JSON.stringify(name)} cannot be a tensor name`);
  }
  const where = `safetensors: tensor ${JSON.stringify(name)}`;
  if (!isDType(tensor.dtype)) {
    throw new TypeError(
      `${where}: dtype ${JSON.stringify(tensor.dtype)} is not supported (${SUPPORTED})`,
    );
  }
  if (!(tensor.data instanceof ARRAY_TYPES[tensor.dtype])) {
    throw new TypeError(
      `${where}: dtype ${tensor.dtype} needs data as a ${ARRAY_TYPES[tensor.dtype].name}`,
    );
  }
  if (!isNaturalList(tensor.shape)) {
    throw new TypeError(
      `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(tensor.shape)}`,
    );
  }
  const count = elementCount(tensor.shape);
  if (count !== tensor.data.length) {
    throw new RangeError(
      `${where}: shape [${tensor.shape.join(', ')}] has ${count} elements but data has ${tensor.data.length}`,
    );
  }
}

/** JSON text of an object whose keys appear in the given order (JSON.stringify moves integer-like keys first). */
function jsonObject(entries: [string, string][]): string {
  return `{${entries.map(([key, valueJson]) => `${JSON.stringify(key)}:${valueJson}`).join(',')}}`;
}

/** Encodes tensors (and optional string metadata) as the bytes of a safetensors file. */
export function serializeSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Buffer {
  assertLittleEndianHost();
  const entries = Object.entries(tensors);
  entries.forEach(([name, tensor]) => checkTensor(name, tensor));

  let dataLength = 0;
  const placed = entries
    .sort(
      ([a, x], [b, y]) => y.data.BYTES_PER_ELEMENT - x.data.BYTES_PER_ELEMENT || compareNames(a, b),
    )
    .map(([name, tensor]) => {
      const begin = dataLength;
      dataLength += tensor.data.byteLength;
      return { name, tensor, begin, end: dataLength };
    });

  const header: [string, string][] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).sort(([a], [b]) => compareNames(a, b));
    for (const [key, value] of pairs) {
      if (typeof value !== 'string') {
        throw new TypeError(
          `safetensors: metadata[${JSON.stringify(key)}] must be a string (the format maps ` +
            `strings to strings), got ${typeof value}`,
        );
      }
    }
    header.push([
      METADATA_KEY,
      jsonObject(pairs.map(([key, value]) => [key, JSON.stringify(value)])),
    ]);
  }
  const byName = [...placed].sort((x, y) => compareNames(x.name, y.name));
  for (const { name, tensor, begin, end } of byName) {
    const info = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [begin, end] };
    header.push([name, JSON.stringify(info)]);
  }
  const headerBytes = Buffer.from(jsonObject(header), 'utf8');
  const headerLength = Math.ceil(headerBytes.length / 8) * 8;

  const file = Buffer.alloc(8 + headerLength + dataLength);
  file.writeBigUInt64LE(BigInt(headerLength), 0);
  headerBytes.copy(file, 8);
  file.fill(0x20, 8 + headerBytes.length, 8 + headerLength);
  for (const { tensor, begin } of placed) {
    const { data } = tensor;
    file.set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      8 + headerLength + begin,
    );
  }
  return file;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decodes the bytes of a safetensors file. `name` (usually the path) labels errors: any problem
 * (truncated file, bad header length, invalid JSON, unsupported dtype, shape and offsets that
 * disagree, overlapping, out-of-range or non-contiguous data, trailing bytes) throws one Error
 * naming the file and the problem. Tensors whose data is aligned for their type are views into
 * `bytes` (no copy: they change if `bytes` does); unaligned ones are copied.
 */
export function parseSafetensors(bytes: Uint8Array, name: string): SafetensorsContents {
  assertLittleEndianHost();
  const invalid = (problem: string): Error =>
    new Error(`${name} is not a valid safetensors file: ${problem}`);

  if (bytes.length < 8) {
    throw invalid(`it is ${bytes.length} bytes long, too short for the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declaredLength = view.getBigUint64(0, true);
  if (declaredLength > BigInt(bytes.length - 8)) {
    throw invalid(
      `the header length ${declaredLength} runs past the end of the file (${bytes.length - 8} bytes follow the length field)`,
    );
  }
  const headerLength = Number(declaredLength);
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;

  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)),
    );
  } catch (error) {
    throw invalid(`the header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw invalid('the header is not a JSON object');
  }

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === METADATA_KEY) {
      metadata = parseMetadata(value, invalid);
    } else {
      entries.push(parseEntry(key, value, invalid));
    }
  }
  checkLayout(entries, dataLength, invalid);

  const tensors = entries.map((entry): [string, Tensor] => {
    const ArrayType: ViewConstructor = ARRAY_TYPES[entry.dtype];
    const start = dataStart + entry.begin;
    // A typed array view needs an offset aligned to its element size; otherwise copy the bytes
    // into a fresh buffer (new Uint8Array copies; Buffer#slice would not).
    const source =
      (bytes.byteOffset + start) % ArrayType.BYTES_PER_ELEMENT === 0
        ? bytes.subarray(start)
        : new Uint8Array(bytes.subarray(start, dataStart + entry.end));
    const data = new ArrayType(source.buffer, source.byteOffset, elementCount(entry.shape));
    return [entry.name, { dtype: entry.dtype, shape: entry.shape, data } as Tensor];
  });
  // fromEntries defines own properties, so a tensor named "__proto__" cannot touch the prototype.
  return { tensors: Object.fromEntries(tensors), metadata };
}

type Invalid = (problem: string) => Error;

function parseMetadata(value: unknown, invalid: Invalid): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${METADATA_KEY} is not an object`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw invalid(`${METADATA_KEY}[${JSON.stringify(key)}] is not a string`);
    }
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown, invalid: Invalid): Entry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${where} is not described by an object`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isDType(dtype)) {
    throw invalid(`${where} has dtype ${JSON.stringify(dtype)}; rnnkit reads ${SUPPORTED}`);
  }
  if (!isNaturalList(shape)) {
    throw invalid(
      `${where} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`,
    );
  }
  if (!isNaturalList(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]) {
    throw invalid(
      `${where} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with begin <= end`,
    );
  }
  const [begin, end] = offsets;
  const needed = elementCount(shape) * ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
  if (end - begin !== needed) {
    throw invalid(
      `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${needed} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape, begin, end };
}

/** The data section must be exactly the tensors' bytes, back to back, as the reference reader demands. */
function checkLayout(entries: Entry[], dataLength: number, invalid: Invalid): void {
  for (const { name, begin, end } of entries) {
    if (end > dataLength) {
      throw invalid(
        `tensor ${JSON.stringify(name)} has data_offsets [${begin}, ${end}] beyond the ${dataLength} bytes of data`,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  sorted.forEach((entry, i) => {
    if (entry.begin < covered) {
      const previous = sorted[i - 1];
      throw invalid(
        `tensors ${JSON.stringify(previous.name)} and ${JSON.stringify(entry.name)} overlap ` +
          `(data_offsets [${previous.begin}, ${previous.end}] and [${entry.begin}, ${entry.end}])`,
      );
    }
    if (entry.begin > covered) {
      throw invalid(
        `${entry.begin - covered} bytes before tensor ${JSON.stringify(entry.name)} belong to no tensor`,
      );
    }
    covered = entry.end;
  });
  if (covered < dataLength) {
    throw invalid(`${dataLength - covered} bytes of trailing data follow the last tensor`);
  }
}

/** A file's bytes; the error names the file. */
export async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads and validates a safetensors file (see parseSafetensors). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  return parseSafetensors(await readBytes(path), path);
}

/** Writes tensors and metadata as a safetensors file, atomically (see writeFileAtomic). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
