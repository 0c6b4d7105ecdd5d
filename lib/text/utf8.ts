/**
 * Bytes of subword tokens back to text. Byte-level tokenizers write a JS string as WTF-8: UTF-8,
 * except that a lone surrogate (possible in a JS string, never in valid Unicode) takes the
 * three-byte form UTF-8 would give its code point. Decoding accepts that form back, so every JS
 * string round-trips; any other invalid sequence becomes one U+FFFD per maximal ill-formed
 * subpart, as TextDecoder does.
 */

const REPLACEMENT = 0xfffd;

export interface Utf8DecodeOptions {
  /** Leave out a trailing sequence that is incomplete but could still be completed. */
  stream?: boolean;
  /**
   * SentencePiece's rule for byte pieces: strict UTF-8 (no surrogates) and one U+FFFD for each
   * byte that does not start a valid character.
   */
  strict?: boolean;
}

export function decodeWtf8(bytes: Uint8Array, options: Utf8DecodeOptions = {}): string {
  const { stream = false, strict = false } = options;
  const parts: string[] = [];
  const units: number[] = [];
  const push = (cp: number) => {
    if (cp > 0xffff) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      units.push(cp);
    }
    if (units.length >= 8192) {
      parts.push(String.fromCharCode(...units));
      units.length = 0;
    }
  };
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      push(b);
      i++;
      continue;
    }
    let need: number;
    let cp: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed && strict) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else {
      push(REPLACEMENT);
      i++;
      continue;
    }
    let k = 1;
    for (; k <= need && i + k < n; k++) {
      const c = bytes[i + k];
      if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) break;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (k > need) {
      push(cp);
      i += k;
    } else if (i + k === n && stream) {
      break;
    } else {
      push(REPLACEMENT);
      i += strict ? 1 : k;
    }
  }
  parts.push(String.fromCharCode(...units));
  return parts.join('');
}
