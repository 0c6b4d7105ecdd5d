function lineAt(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) line++;
  }
  return line;
}

function decodesAsPrefix(bytes: Uint8Array): boolean {
  try {
    // Streaming mode holds back a sequence cut off at the end instead of rejecting it.
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true });
    return true;
  } catch {
    return false;
  }
}

/** Says where UTF-8 decoding of `bytes`, known to fail, breaks down. */
function utf8Problem(bytes: Uint8Array): string {
  if (decodesAsPrefix(bytes)) {
    return 'it ends in the middle of a multi-byte character';
  }
  // A prefix that decodes stays decodable when shortened, so binary search finds the longest one;
  // the byte right after it is the first that cannot continue valid UTF-8 (it may be
  // the byte that cuts short a multi-byte character begun just before).
  let good = 0;
  let bad = bytes.length;
  while (bad - good > 1) {
    const mid = Math.floor((good + bad) / 2);
    if (decodesAsPrefix(bytes.subarray(0, mid))) good = mid;
    else bad = mid;
  }
  const byte = bytes[good].toString(16).padStart(2, '0');
  return `decoding fails at offset ${good} (byte 0x${byte}, line ${lineAt(bytes, good)})`;
}

/**
 * Checks that a training corpus is UTF-8 text and returns it decoded (a leading byte order mark
 * is dropped). Throws an Error naming `name` for an empty corpus, a binary one (any NUL byte,
 * which also catches UTF-16/UTF-32 files) and invalid UTF-8, with the offset and line where
 * decoding fails.
 */
export function validateCorpus(bytes: Uint8Array, name: string): string {
  const nul = bytes.indexOf(0);
  if (nul !== -1) {
    throw new Error(
      `corpus ${name} is not text: NUL byte at offset ${nul} (line ${lineAt(bytes, nul)}); ` +
        'it is a binary file or UTF-16/UTF-32 text, and rnnkit reads UTF-8',
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`corpus ${name} is not valid UTF-8: ${utf8Problem(bytes)}`);
  }
  if (text.length === 0) {
    throw new Error(`corpus ${name} is empty`);
  }
  return text;
}
