// What loading a model file checks beyond its format, for every model family and for ONNX files:
// that each tensor's bytes, dtype and shape are those its writer recorded (a CRC-32C per tensor in
// the metadata), that the file holds the model's tensors and no others, that its spec names every
// field, and that its weights are finite. Each check throws one Error naming the file and the
// first tensor or field at fault.
import type { SafetensorsContents, Tensor } from './safetensors';

/** Options of every model loader (checkpoints, PyTorch state dicts, ONNX files). */
export interface LoadOptions {
  /**
   * false: tensors the model does not have are ignored, as PyTorch's
   * `load_state_dict(strict=False)`; missing tensors and mismatched shapes, dtypes and specs are
   * refused either way. Default true.
   */
  strict?: boolean;
  /**
   * true: weights holding NaN or ±Infinity load (to inspect a broken model); generating from
   * such a model ends the rows it poisons with an error. Default false.
   */
  allowNonFinite?: boolean;
}

/**
 * The metadata key of the checksums: JSON `{ "algorithm": "crc32c", "tensors": { name: hex },
 * "rest": hex }`, `rest` covering the rest of the file (see checksumMetadata).
 */
export const CHECKSUMS_KEY = 'checksums';
const ALGORITHM = 'crc32c';

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing by 4 bytes.
const TABLES = (() => {
  const t = new Uint32Array(4 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < 4; s++)
      t[s * 256 + n] = (t[(s - 1) * 256 + n] >>> 8) ^ t[t[(s - 1) * 256 + n] & 0xff];
  }
  return t;
})();

/** CRC-32C of `bytes`, continuing from `crc` (the result of an earlier call; 0 to start). */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const end4 = bytes.length & ~3;
  for (; i < end4; i += 4) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    c =
      t[768 + (c & 0xff)] ^
      t[512 + ((c >>> 8) & 0xff)] ^
      t[256 + ((c >>> 16) & 0xff)] ^
      t[c >>> 24];
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** What a checksum covers: a tensor's dtype, shape and little-endian bytes. */
export interface Checksummed {
  dtype: string;
  shape: readonly number[];
  bytes: Uint8Array;
}

/** Safetensors tensors as what their checksums cover. */
function checksummed(tensors: Record<string, Tensor>): Record<string, Checksummed> {
  const out: Record<string, Checksummed> = {};
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    out[name] = {
      dtype,
      shape,
      bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  }
  return out;
}

const hex = (crc: number) => crc.toString(16).padStart(8, '0');

function checksum(t: Checksummed): string {
  const head = new TextEncoder().encode(`${t.dtype}[${t.shape.join(',')}]`);
  return hex(crc32c(t.bytes, crc32c(head)));
}

/**
 * The metadata value recording every tensor's checksum, and one of `rest`: what else the file
 * holds that shapes the model (its other metadata, or an ONNX file's graph).
 */
export function checksumMetadata(tensors: Record<string, Checksummed>, rest: Uint8Array): string {
  const sums = Object.keys(tensors)
    .sort()
    .map((name) => [name, checksum(tensors[name])]);
  return JSON.stringify({
    algorithm: ALGORITHM,
    tensors: Object.fromEntries(sums),
    rest: hex(crc32c(rest)),
  });
}

/**
 * Checks every tensor, then `rest` (named `rest.name` in errors), against the checksums recorded
 * under CHECKSUMS_KEY; files without them (older ones, or written by other tools) pass. Names the
 * first tensor, in name order, whose dtype, shape or bytes changed, and any tensor added or
 * removed since.
 */
export function verifyChecksums(
  where: string,
  recorded: string | undefined,
  tensors: Record<string, Checksummed>,
  rest: { name: string; bytes: Uint8Array },
): void {
  if (recorded === undefined) return;
  let sums: Record<string, unknown>;
  let restSum: unknown;
  try {
    const parsed = JSON.parse(recorded) as {
      algorithm?: unknown;
      tensors?: unknown;
      rest?: unknown;
    };
    if (parsed?.algorithm !== ALGORITHM) {
      throw new Error(`algorithm ${JSON.stringify(parsed?.algorithm)}, expected '${ALGORITHM}'`);
    }
    if (typeof parsed.tensors !== 'object' || parsed.tensors === null) {
      throw new Error('no tensors map');
    }
    sums = parsed.tensors as Record<string, unknown>;
    restSum = parsed.rest;
  } catch (error) {
    throw new Error(
      `${where}: its metadata '${CHECKSUMS_KEY}' is invalid: ${(error as Error).message}`,
    );
  }
  const names = [...new Set([...Object.keys(sums), ...Object.keys(tensors)])].sort();
  for (const name of names) {
    if (!Object.hasOwn(tensors, name)) {
      throw new Error(`${where}: tensor '${name}' has a recorded checksum but is not in the file`);
    }
    if (!Object.hasOwn(sums, name)) {
      throw new Error(`${where}: tensor '${name}' has no recorded checksum (added after writing?)`);
    }
    const found = checksum(tensors[name]);
    if (found !== sums[name]) {
      throw new Error(
        `${where}: tensor '${name}' fails its checksum (${ALGORITHM} ${String(sums[name])} ` +
          `recorded, ${found} computed): the file is corrupted`,
      );
    }
  }
  const found = hex(crc32c(rest.bytes));
  if (found !== restSum) {
    throw new Error(
      `${where}: its ${rest.name} fails its checksum (${ALGORITHM} ${String(restSum)} ` +
        `recorded, ${found} computed): the file is corrupted`,
    );
  }
}

/** The metadata other than the checksums, as the bytes their checksum covers. */
function metadataBytes(metadata: Record<string, string>): Uint8Array {
  const entries = Object.entries(metadata)
    .filter(([key]) => key !== CHECKSUMS_KEY)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new TextEncoder().encode(JSON.stringify(entries));
}

/** Records the checksums of a safetensors file's tensors and metadata in its metadata. */
export function recordChecksums(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
): void {
  metadata[CHECKSUMS_KEY] = checksumMetadata(checksummed(tensors), metadataBytes(metadata));
}

/** Verifies the checksums recordChecksums wrote, when the file has them (see verifyChecksums). */
export function verifyFileChecksums(path: string, file: SafetensorsContents): void {
  verifyChecksums(path, file.metadata[CHECKSUMS_KEY], checksummed(file.tensors), {
    name: 'metadata',
    bytes: metadataBytes(file.metadata),
  });
}

/** Refuses tensors outside `expected` unless strict is false. */
export function checkUnexpected(
  where: string,
  names: Iterable<string>,
  expected: ReadonlySet<string>,
  options: LoadOptions,
): void {
  if (options.strict === false) return;
  for (const name of names) {
    if (!expected.has(name)) {
      throw new Error(
        `${where}: unexpected tensor '${name}', which this model's spec does not have ` +
          '(a spec that disagrees with the weights?); load with { strict: false } to ignore it',
      );
    }
  }
}

/** Refuses the first NaN or infinite weight, naming the tensor and its index, unless allowed. */
export function checkFinite(
  where: string,
  tensors: Record<string, { shape: readonly number[]; data: Float32Array }>,
  options: LoadOptions,
): void {
  if (options.allowNonFinite) return;
  for (const name of Object.keys(tensors).sort()) {
    const { shape, data } = tensors[name];
    // x - x is 0 for every finite x and NaN for NaN and ±Infinity.
    let i = 0;
    while (i < data.length && data[i] - data[i] === 0) i++;
    if (i === data.length) continue;
    const index: number[] = [];
    for (let k = shape.length - 1, rest = i; k >= 0; k--) {
      index.unshift(rest % shape[k]);
      rest = Math.floor(rest / shape[k]);
    }
    throw new Error(
      `${where}: tensor '${name}' holds ${data[i]} at index [${index.join(', ')}]; ` +
        'load with { allowNonFinite: true } to inspect it',
    );
  }
}

/**
 * Checks a stored spec against the spec a model resolved from it: every field present, none
 * unknown, each with the value the model took (so no default filled a gap and no value was
 * coerced).
 */
export function checkSpecFields(where: string, stored: unknown, resolved: object): void {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) {
    throw new Error(`${where}: its model spec is not a JSON object`);
  }
  const known = new Set(Object.keys(resolved));
  for (const key of Object.keys(stored)) {
    if (!known.has(key)) throw new Error(`${where}: its model spec has an unknown field '${key}'`);
  }
  for (const [key, value] of Object.entries(resolved)) {
    const s = (stored as Record<string, unknown>)[key];
    if (s === undefined) throw new Error(`${where}: its model spec has no field '${key}'`);
    if (JSON.stringify(s) !== JSON.stringify(value)) {
      throw new Error(
        `${where}: its model spec field '${key}' is ${JSON.stringify(s)}, not a valid value`,
      );
    }
  }
}
