// int8 rows and bfloat16 rounding against PyTorch: torch.quantize_per_channel (symmetric, zero point
// 0, the scales rnnkit chose) gives the same int8 values, and torch's bfloat16 cast the same bits.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import {
  dequantizeRows,
  quantizeRows,
  roundToBfloat16,
  toBfloat16Bits,
} from '../../lib/nn/quantize';
import { randn } from '../helpers/reference';

const PYTHON = '/usr/bin/python3';

function torch(script: string, input: unknown): unknown {
  return JSON.parse(
    execFileSync(PYTHON, ['-c', `import json, sys, torch\n${script}`], {
      input: JSON.stringify(input),
      encoding: 'utf8',
    }),
  );
}

describe('int8 rows', () => {
  it('scale max|row| / 127 per row, q in [-127, 127], as torch.quantize_per_channel gives', () => {
    const rows = 24;
    const data = randn(rows * 37, 3, 2);
    data.fill(0, 5 * 37, 6 * 37); // a row of zeros: scale 1, q 0
    const { q, scales } = quantizeRows(data, rows);
    for (let r = 0; r < rows; r++) {
      const row = data.subarray(r * 37, (r + 1) * 37);
      const max = Math.max(...Array.from(row, Math.abs));
      expect(scales[r]).toBe(max > 0 ? Math.fround(max / 127) : 1);
    }
    expect(q.every((v) => v >= -127 && v <= 127)).toBe(true);
    const theirs = torch(
      'd = json.load(sys.stdin)\n' +
        "w = torch.tensor(d['w'], dtype=torch.float32).reshape(d['rows'], -1)\n" +
        "s = torch.tensor(d['s'], dtype=torch.float64)\n" +
        'q = torch.quantize_per_channel(w, s, torch.zeros(len(s), dtype=torch.long), 0, torch.qint8)\n' +
        'print(json.dumps(q.int_repr().flatten().tolist()))',
      { w: Array.from(data), s: Array.from(scales), rows },
    );
    expect(Array.from(q)).toEqual(theirs);
    const back = dequantizeRows({ q, scales });
    for (let i = 0; i < data.length; i++) {
      expect(Math.abs(back[i] - data[i])).toBeLessThanOrEqual(scales[Math.floor(i / 37)] / 2);
    }
  });
});

describe('bfloat16', () => {
  it("rounds as torch's bfloat16 cast does (to nearest, ties to even)", () => {
    const values = Float32Array.from([
      ...randn(500, 9, 3),
      1 + 2 ** -8, // a tie: down to 1
      1 + 3 * 2 ** -8, // a tie: up to the even neighbour
      -0.0078125,
      3.4e38,
      1e-40,
    ]);
    const theirs = torch(
      'v = torch.tensor(json.load(sys.stdin), dtype=torch.float32).to(torch.bfloat16)\n' +
        'print(json.dumps(v.view(torch.int16).to(torch.int32).bitwise_and(0xffff).tolist()))',
      Array.from(values),
    );
    expect(Array.from(values, toBfloat16Bits)).toEqual(theirs);
    const rounded = values.slice();
    roundToBfloat16(rounded);
    rounded.forEach((v, i) =>
      expect(new Uint32Array(Float32Array.of(v).buffer)[0]).toBe(
        (toBfloat16Bits(values[i]) << 16) >>> 0,
      ),
    );
  });
});
