// An SVG heatmap of attention weights: source tokens along the top, output tokens down the side,
// one cell per (output, source) pair shaded by its weight.

const escape = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A visible label for a token (spaces and empty tokens would vanish in the picture). */
function label(token: string): string {
  if (token === ' ') return '\u2423';
  return token.length === 0 ? '\u2205' : token;
}

/** attention[i][j]: weight of source token j for output token i, each row summing to 1. */
export function attentionHeatmapSvg(
  sourceTokens: readonly string[],
  outputTokens: readonly string[],
  attention: readonly ArrayLike<number>[],
  title = '',
): string {
  if (attention.length !== outputTokens.length) {
    throw new RangeError(
      `attention has ${attention.length} rows, expected one per output token (${outputTokens.length})`,
    );
  }
  const cell = 22;
  const longest = (ts: readonly string[]) => Math.max(1, ...ts.map((t) => label(t).length));
  const left = 16 + 7 * longest(outputTokens);
  const top = 40 + 7 * longest(sourceTokens);
  const W = left + cell * sourceTokens.length + 16;
  const H = top + cell * outputTokens.length + 16;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="monospace" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="8" y="16" font-family="sans-serif" font-size="13">${escape(title)}</text>`,
  ];
  sourceTokens.forEach((t, j) => {
    const x = left + cell * j + cell / 2 + 4;
    parts.push(
      `<text x="${x}" y="${top - 6}" transform="rotate(-90 ${x} ${top - 6})">${escape(label(t))}</text>`,
    );
  });
  outputTokens.forEach((t, i) => {
    const y = top + cell * i;
    parts.push(
      `<text x="${left - 6}" y="${y + cell / 2 + 4}" text-anchor="end">${escape(label(t))}</text>`,
    );
    for (let j = 0; j < sourceTokens.length; j++) {
      const w = Math.max(0, Math.min(1, Number(attention[i][j] ?? 0)));
      const shade = Math.round(255 * (1 - w));
      parts.push(
        `<rect x="${left + cell * j}" y="${y}" width="${cell}" height="${cell}" ` +
          `fill="rgb(${shade},${shade},255)" stroke="#eee"><title>${w.toFixed(3)}</title></rect>`,
      );
    }
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}
