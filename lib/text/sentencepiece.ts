import { readFileSync } from 'node:fs';
import { Reader } from 'protobufjs/minimal';
import {
  checkId,
  checkTokenId,
  lookupSpecial,
  type DecodeOptions,
  type EncodeOptions,
  type SentencePieceTokenizerJSON,
  type Tokenizer,
} from './tokenizer';
import { decodeWtf8 } from './utf8';

// Piece types and model types as numbered in SentencePiece's sentencepiece_model.proto.
const enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}
const MODEL_TYPES = ['', 'unigram', 'bpe', 'word', 'char'];
const SPACE = '\u2581';
/** SentencePiece's penalty on an unknown piece in unigram Viterbi: min score - 10. */
const UNKNOWN_PENALTY = 10;

interface Piece {
  piece: string;
  score: number;
  type: PieceType;
}

interface NormalizerSpec {
  name: string;
  charsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

interface ModelProto {
  pieces: Piece[];
  modelType: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
  normalizer: NormalizerSpec;
}

const WIRE = { varint: 0, bytes: 2, fixed32: 5 };

/** One field of a message, read by the accessor that names its type (the wire type is checked). */
class Field {
  constructor(
    private readonly r: Reader,
    readonly no: number,
    private readonly wire: number,
  ) {}
  private expect(want: number): Reader {
    if (this.wire !== want) {
      throw new Error(`field ${this.no} has wire type ${this.wire}, expected ${want}`);
    }
    return this.r;
  }
  int(): number {
    return this.expect(WIRE.varint).int32();
  }
  flag(): boolean {
    return this.int() !== 0;
  }
  float(): number {
    return this.expect(WIRE.fixed32).float();
  }
  string(): string {
    return this.expect(WIRE.bytes).string();
  }
  bytes(): Uint8Array {
    return this.expect(WIRE.bytes).bytes();
  }
  /** A nested message, read field by field. */
  message(read: (f: Field) => boolean): void {
    const r = this.expect(WIRE.bytes);
    const end = r.uint32() + r.pos;
    if (end > r.len) throw new Error('a message runs past the end of the file');
    readMessage(r, end, read);
  }
}

/** Reads fields up to `end`; `read` returns false for a field it does not want (skipped). */
function readMessage(r: Reader, end: number, read: (f: Field) => boolean): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (!read(new Field(r, tag >>> 3, tag & 7))) r.skipType(tag & 7);
  }
  if (r.pos !== end) throw new Error('a field runs past the end of its message');
}

function readPiece(f: Field): Piece {
  const p: Piece = { piece: '', score: 0, type: PieceType.Normal };
  f.message((g) => {
    if (g.no === 1) p.piece = g.string();
    else if (g.no === 2) p.score = g.float();
    else if (g.no === 3) p.type = g.int();
    else return false;
    return true;
  });
  return p;
}

function parseModel(bytes: Uint8Array): ModelProto {
  const m: ModelProto = {
    pieces: [],
    modelType: 1,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
    normalizer: {
      name: '',
      charsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: true,
      escapeWhitespaces: true,
    },
  };
  const n = m.normalizer;
  const r = Reader.create(bytes);
  readMessage(r, r.len, (f) => {
    if (f.no === 1) {
      m.pieces.push(readPiece(f));
    } else if (f.no === 2) {
      f.message((g) => {
        if (g.no === 3) m.modelType = g.int();
        else if (g.no === 35) m.byteFallback = g.flag();
        else if (g.no === 24) m.treatWhitespaceAsSuffix = g.flag();
        else if (g.no === 41) m.bosId = g.int();
        else if (g.no === 42) m.eosId = g.int();
        else if (g.no === 43) m.padId = g.int();
        else if (g.no === 44) m.unkSurface = g.string();
        else return false;
        return true;
      });
    } else if (f.no === 3) {
      f.message((g) => {
        if (g.no === 1) n.name = g.string();
        else if (g.no === 2) n.charsmap = g.bytes();
        else if (g.no === 3) n.addDummyPrefix = g.flag();
        else if (g.no === 4) n.removeExtraWhitespaces = g.flag();
        else if (g.no === 5) n.escapeWhitespaces = g.flag();
        else return false;
        return true;
      });
    } else {
      return false;
    }
    return true;
  });
  return m;
}

/**
 * The normalizer's precompiled character map: a darts-clone double-array trie over UTF-8 bytes
 * whose values index NUL-terminated replacement strings. Longest match wins.
 */
class CharsMap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;

  constructor(blob: Uint8Array) {
    if (blob.length < 4) throw new Error('the normalizer character map is truncated');
    const size = new DataView(blob.buffer, blob.byteOffset, 4).getUint32(0, true);
    if (size % 4 !== 0 || 4 + size > blob.length) {
      throw new Error('the normalizer character map is truncated');
    }
    this.units = new Uint32Array(size / 4);
    const view = new DataView(blob.buffer, blob.byteOffset + 4, size);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 * i, true);
    this.strings = blob.subarray(4 + size);
  }

  /** The longest rule matching at `pos`: [replacement bytes, bytes consumed], or null. */
  match(input: Uint8Array, pos: number): [Uint8Array, number] | null {
    const u = this.units;
    const offset = (unit: number) => (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
    let id = offset(u[0]);
    let best = -1;
    let bestLength = 0;
    for (let i = pos; i < input.length; i++) {
      id = (id ^ input[i]) >>> 0;
      if (id >= u.length) break;
      const unit = u[id];
      if ((unit & 0x800000ff) >>> 0 !== input[i]) break;
      id = (id ^ offset(unit)) >>> 0;
      if ((unit >>> 8) & 1) {
        if (id >= u.length) break;
        best = u[id] & 0x7fffffff;
        bestLength = i + 1 - pos;
      }
    }
    if (best < 0) return null;
    let end = best;
    while (end < this.strings.length && this.strings[end] !== 0) end++;
    if (best >= this.strings.length) throw new Error('the normalizer character map is corrupt');
    return [this.strings.subarray(best, end), bestLength];
  }
}

/** Length of the valid UTF-8 character at `pos`, or 0 when the bytes there are not one. */
function utf8Length(b: Uint8Array, pos: number): number {
  const c = b[pos];
  if (c < 0x80) return 1;
  const [n, lo, hi] =
    c >= 0xc2 && c <= 0xdf
      ? [2, 0x80, 0xbf]
      : c === 0xe0
        ? [3, 0xa0, 0xbf]
        : c === 0xed
          ? [3, 0x80, 0x9f]
          : c >= 0xe1 && c <= 0xef
            ? [3, 0x80, 0xbf]
            : c === 0xf0
              ? [4, 0x90, 0xbf]
              : c >= 0xf1 && c <= 0xf3
                ? [4, 0x80, 0xbf]
                : c === 0xf4
                  ? [4, 0x80, 0x8f]
                  : [0, 0, 0];
  if (n === 0 || pos + n > b.length || b[pos + 1] < lo || b[pos + 1] > hi) return 0;
  for (let k = 2; k < n; k++) if (b[pos + k] < 0x80 || b[pos + k] > 0xbf) return 0;
  return n;
}

const UTF8 = new TextEncoder();
const REPLACEMENT = UTF8.encode('\uFFFD');
const SPACE_BYTES = UTF8.encode(SPACE);

/**
 * A SentencePiece model (`.model` file) of the unigram or BPE type, encoding and decoding as the
 * SentencePiece library does: the normalizer's stored rules (nmt_nfkc, identity or any
 * precompiled map), the dummy `▁` prefix, whitespace as `▁` with extra spaces removed, unigram
 * Viterbi over the piece scores in float32, BPE merges by score (leftmost first among equals),
 * runs of unknown characters as one unknown piece, or as byte pieces with byte fallback.
 *
 * Ids are the model's own. `specials` are its control pieces (such as `<s>`, `</s>`);
 * `specialId` also answers '<bos>', '<eos>' and '<pad>' with the model's bos, eos and pad ids.
 */
export class SentencePieceTokenizer implements Tokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly size: number;
  readonly unknownId: number;
  readonly specials: readonly string[];
  /** 'unigram' or 'bpe'. */
  readonly modelType: 'unigram' | 'bpe';
  private readonly model: Uint8Array;
  private readonly proto: ModelProto;
  private readonly pieceIds = new Map<string, number>();
  private readonly specialIds = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly charsMap: CharsMap | null;
  private readonly maxPieceChars: number;
  private readonly minScore: number;

  /** Reads a `.model` file; `name` (default 'model') names it in errors. */
  constructor(model: Uint8Array, name = 'model') {
    const fail = (why: string) => new Error(`${name} is not a usable SentencePiece model: ${why}`);
    let proto: ModelProto;
    try {
      proto = parseModel(model);
    } catch (error) {
      throw fail(`it does not parse as a SentencePiece ModelProto (${(error as Error).message})`);
    }
    if (proto.pieces.length === 0)
      throw fail('it holds no pieces (truncated, or not a .model file)');
    const type = MODEL_TYPES[proto.modelType] ?? `number ${proto.modelType}`;
    if (type !== 'unigram' && type !== 'bpe') {
      throw fail(`model type '${type}' is not supported; rnnkit reads 'unigram' and 'bpe' models`);
    }
    this.modelType = type as 'unigram' | 'bpe';
    this.model = Uint8Array.from(model);
    this.proto = proto;
    this.size = proto.pieces.length;
    let unknown = -1;
    let minScore = Infinity;
    let maxPieceChars = 1;
    const specials: string[] = [];
    proto.pieces.forEach((p, id) => {
      if (p.type === PieceType.Unknown) unknown = id;
      else if (p.type === PieceType.Control) {
        specials.push(p.piece);
        this.specialIds.set(p.piece, id);
      } else if (p.type === PieceType.UserDefined) {
        throw fail(
          `piece ${id} ${JSON.stringify(p.piece)} is user-defined, which rnnkit does not support`,
        );
      } else if (p.type === PieceType.Byte) {
        const m = /^<0x([0-9A-F]{2})>$/.exec(p.piece);
        if (!m) throw fail(`byte piece ${id} is ${JSON.stringify(p.piece)}, expected <0xXX>`);
        else this.byteIds[parseInt(m[1], 16)] = id;
      } else if (p.type === PieceType.Normal || p.type === PieceType.Unused) {
        if (p.type === PieceType.Normal) minScore = Math.min(minScore, p.score);
        if (p.piece.length === 0) throw fail(`piece ${id} is empty`);
        if (!this.pieceIds.has(p.piece)) this.pieceIds.set(p.piece, id);
        maxPieceChars = Math.max(maxPieceChars, [...p.piece].length);
      } else {
        throw fail(`piece ${id} has unknown type ${p.type}`);
      }
    });
    if (unknown < 0) throw fail('it has no unknown piece');
    if (proto.byteFallback && this.byteIds.includes(-1)) {
      throw fail('byte fallback is on but not all 256 byte pieces are present');
    }
    this.unknownId = unknown;
    this.specials = specials;
    this.minScore = minScore;
    this.maxPieceChars = maxPieceChars;
    for (const [alias, id] of [
      ['<bos>', proto.bosId],
      ['<eos>', proto.eosId],
      ['<pad>', proto.padId],
    ] as const) {
      if (id >= 0 && id < this.size && !this.specialIds.has(alias)) this.specialIds.set(alias, id);
    }
    try {
      this.charsMap = proto.normalizer.charsmap.length
        ? new CharsMap(proto.normalizer.charsmap)
        : null;
    } catch (error) {
      throw fail((error as Error).message);
    }
  }

  /** Reads a SentencePiece `.model` file. */
  static load(file: string): SentencePieceTokenizer {
    return new SentencePieceTokenizer(readFileSync(file), file);
  }

  /** The piece (as stored, with `▁` for spaces) of an id. */
  idToPiece(id: number): string {
    return this.proto.pieces[checkTokenId('idToPiece', id, this.size)].piece;
  }

  specialId(name: string): number {
    return lookupSpecial(this.specialIds, name);
  }

  /** Text as the model normalizes it, `▁` for spaces. */
  normalize(text: string): string {
    const input = UTF8.encode(text);
    const spec = this.proto.normalizer;
    const out: number[] = [];
    const space = spec.escapeWhitespaces ? SPACE_BYTES : UTF8.encode(' ');
    const prefix = (pos: number): [Uint8Array, number] => {
      const rule = this.charsMap?.match(input, pos);
      if (rule) return rule;
      const n = utf8Length(input, pos);
      return n === 0 ? [REPLACEMENT, 1] : [input.subarray(pos, pos + n), n];
    };
    let pos = 0;
    if (spec.removeExtraWhitespaces) {
      for (;;) {
        if (pos >= input.length) break;
        const [s, n] = prefix(pos);
        if (!(s.length === 1 && s[0] === 0x20)) break;
        pos += n;
      }
    }
    if (pos >= input.length) return '';
    const dummy = spec.addDummyPrefix;
    if (dummy && !this.proto.treatWhitespaceAsSuffix) out.push(...space);
    let prevSpace = spec.removeExtraWhitespaces;
    while (pos < input.length) {
      const [s, n] = prefix(pos);
      let start = 0;
      if (prevSpace) while (start < s.length && s[start] === 0x20) start++;
      if (start < s.length) {
        for (let k = start; k < s.length; k++) {
          if (s[k] === 0x20 && spec.escapeWhitespaces) out.push(...SPACE_BYTES);
          else out.push(s[k]);
        }
        prevSpace = s[s.length - 1] === 0x20;
      }
      pos += n;
      if (!spec.removeExtraWhitespaces) prevSpace = false;
    }
    if (spec.removeExtraWhitespaces) {
      const tail = (k: number) => space.every((b, j) => out[k + j] === b);
      while (out.length >= space.length && tail(out.length - space.length)) {
        out.length -= space.length;
      }
    }
    if (dummy && this.proto.treatWhitespaceAsSuffix) out.push(...space);
    return new TextDecoder().decode(Uint8Array.from(out));
  }

  /** [piece, id] segments of normalized text, unknown characters as unknownId. */
  private segment(normalized: string): [string, number][] {
    const chars = [...normalized];
    return this.modelType === 'unigram' ? this.viterbi(chars) : this.bpe(chars);
  }

  private viterbi(chars: string[]): [string, number][] {
    const n = chars.length;
    const score = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const ids = new Int32Array(n + 1);
    const unknownScore = Math.fround(this.minScore - UNKNOWN_PENALTY);
    const offer = (end: number, start: number, id: number, s: number) => {
      const candidate = Math.fround(score[start] + s);
      if (from[end] === -1 || candidate > score[end]) {
        score[end] = candidate;
        from[end] = start;
        ids[end] = id;
      }
    };
    for (let start = 0; start < n; start++) {
      let piece = '';
      let single = false;
      for (let end = start + 1; end <= n && end - start <= this.maxPieceChars; end++) {
        piece += chars[end - 1];
        const id = this.pieceIds.get(piece);
        if (id === undefined || this.proto.pieces[id].type === PieceType.Unused) continue;
        offer(end, start, id, this.proto.pieces[id].score);
        if (end === start + 1) single = true;
      }
      if (!single) offer(start + 1, start, this.unknownId, unknownScore);
    }
    const out: [string, number][] = [];
    for (let end = n; end > 0; end = from[end]) {
      out.push([chars.slice(from[end], end).join(''), ids[end]]);
    }
    return out.reverse();
  }

  private bpe(chars: string[]): [string, number][] {
    // Symbols as a linked list; the candidate pair of highest score merges first, leftmost first
    // among equal scores, until no adjacent pair is a piece.
    const piece = chars.slice();
    const next = chars.map((_, i) => (i + 1 < chars.length ? i + 1 : -1));
    const prev = chars.map((_, i) => i - 1);
    type Cand = { score: number; left: number; text: string };
    const heap: Cand[] = [];
    const better = (a: Cand, b: Cand) =>
      a.score > b.score || (a.score === b.score && a.left < b.left);
    const push = (c: Cand) => {
      heap.push(c);
      for (let i = heap.length - 1; i > 0;) {
        const p = (i - 1) >> 1;
        if (!better(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    };
    const pop = (): Cand => {
      const top = heap[0];
      const last = heap.pop() as Cand;
      if (heap.length > 0) {
        heap[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && better(heap[l], heap[m])) m = l;
          if (r < heap.length && better(heap[r], heap[m])) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m], heap[i]];
          i = m;
        }
      }
      return top;
    };
    const consider = (left: number) => {
      if (left < 0 || next[left] < 0) return;
      const text = piece[left] + piece[next[left]];
      const id = this.pieceIds.get(text);
      if (id !== undefined) push({ score: this.proto.pieces[id].score, left, text });
    };
    for (let i = 0; i + 1 < chars.length; i++) consider(i);
    while (heap.length > 0) {
      const { left, text } = pop();
      const right = next[left];
      if (right < 0 || piece[left] + piece[right] !== text || piece[right] === '') continue;
      piece[left] = text;
      piece[right] = '';
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: [string, number][] = [];
    for (let i = chars.length ? 0 : -1; i >= 0; i = next[i]) {
      const id = this.pieceIds.get(piece[i]);
      out.push([
        piece[i],
        id === undefined || this.proto.pieces[id].type === PieceType.Unused ? this.unknownId : id,
      ]);
    }
    return out;
  }

  encode(text: string, options: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') {
      throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    }
    const ids: number[] = [];
    let unknownRun = false;
    for (const [piece, id] of this.segment(this.normalize(text))) {
      const unknown = id === this.unknownId;
      if (unknown && this.proto.byteFallback) {
        for (const b of UTF8.encode(piece)) ids.push(this.byteIds[b]);
      } else if (unknown && options.unknown !== 'map') {
        throw new Error(
          `${JSON.stringify(piece.replaceAll(SPACE, ' '))} is not in the SentencePiece ` +
            `vocabulary; pass { unknown: 'map' } to encode it as the unknown piece (id ${this.unknownId})`,
        );
      } else if (!(unknown && unknownRun)) {
        ids.push(id);
      }
      unknownRun = unknown && !this.proto.byteFallback;
    }
    return Int32Array.from(ids);
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const parts: string[] = [];
    const bytes: number[] = [];
    let started = false; // whether any text came out yet
    const emit = (s: string) => {
      parts.push(s);
      started ||= s.length > 0;
    };
    const flushBytes = (stream: boolean) => {
      if (bytes.length > 0) emit(decodeWtf8(Uint8Array.from(bytes), { stream, strict: true }));
      bytes.length = 0;
    };
    const spec = this.proto.normalizer;
    for (let i = 0; i < ids.length; i++) {
      const p = this.proto.pieces[checkId(ids, i, this.size)];
      if (p.type === PieceType.Byte) {
        bytes.push(parseInt(p.piece.slice(3, 5), 16));
        continue;
      }
      flushBytes(false);
      if (p.type === PieceType.Control) continue;
      if (p.type === PieceType.Unknown) {
        emit(this.proto.unkSurface);
        continue;
      }
      // The first piece of the text loses the `▁` the dummy prefix put there.
      const bos = !started && (spec.addDummyPrefix || spec.removeExtraWhitespaces);
      const surface = bos && p.piece.startsWith(SPACE) ? p.piece.slice(SPACE.length) : p.piece;
      emit(surface.replaceAll(SPACE, ' '));
    }
    flushBytes(options.stream ?? false);
    return parts.join('');
  }

  toJSON(): SentencePieceTokenizerJSON {
    return { kind: 'sentencepiece', version: 1, model: Buffer.from(this.model).toString('base64') };
  }
}
