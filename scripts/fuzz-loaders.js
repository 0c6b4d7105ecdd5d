#!/usr/bin/env node
// Seeded fuzzing of the model loaders: corrupts good .safetensors checkpoints (float32 and
// float16) and .onnx exports in every way below, loads each mutant as rnnkit serves it (in child
// processes, scripts/fuzz-load-child.js, so that a crash or a hang is counted rather than fatal)
// and sorts the outcomes:
//   refused     the loader threw one Error naming the file
//   identical   it loaded the very model of the original (the mutation touched nothing that
//               matters: header padding, say)
//   served      it loaded a different model without a word: a corrupted file served
//   crash       the child died (signal or exit code)
//   hang        no answer within --timeout ms
// Prints a JSON summary; exits 1 on any crash, hang or served mutant.
//   node scripts/fuzz-loaders.js [--mutants N per format] [--seed S] [--format safetensors|onnx]
//                                [--timeout ms] [--keep DIR]
// Needs the built library (npm run build).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const { CharTokenizer, LanguageModel, buildOnnx } = require(path.join(dist, 'index.js'));
const { onnx } = require('onnx-proto');
const { generator } = require('./fuzz-random.js');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/** Where a safetensors file's header (JSON) and data lie. */
function layout(bytes) {
  const end = 8 + Number(bytes.readBigUInt64LE(0));
  return { header: [8, end], data: [end, bytes.length] };
}

const SPECIAL = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0x3a, 0x30, 0x39];
const NON_FINITE = [0x7fc00000, 0x7f800000, 0xff800000, 0xffc00001];

/** Byte-level mutations, for both formats: [name, (bytes, rng, regions) => mutant]. */
const BYTE_KINDS = [
  [
    'flip-data-bits',
    (b, r, g) => {
      const m = Buffer.from(b);
      const [lo, hi] = g.data;
      for (let k = 1 + r.int(4); k > 0; k--) m[lo + r.int(hi - lo)] ^= 1 << r.int(8);
      return m;
    },
  ],
  [
    'flip-header-bits',
    (b, r, g) => {
      const m = Buffer.from(b);
      const [lo, hi] = g.header;
      for (let k = 1 + r.int(3); k > 0; k--) m[lo + r.int(hi - lo)] ^= 1 << r.int(8);
      return m;
    },
  ],
  [
    'set-bytes',
    (b, r) => {
      const m = Buffer.from(b);
      for (let k = 1 + r.int(8); k > 0; k--) m[r.int(m.length)] = r.pick(SPECIAL);
      return m;
    },
  ],
  ['truncate', (b, r) => b.subarray(0, r.int(b.length))],
  [
    'append',
    (b, r) =>
      Buffer.concat([b, Buffer.from(Array.from({ length: 1 + r.int(64) }, () => r.int(256)))]),
  ],
  [
    'delete-range',
    (b, r) => {
      const at = r.int(b.length);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(32))]);
    },
  ],
  [
    'duplicate-range',
    (b, r) => {
      const at = r.int(b.length);
      const piece = b.subarray(r.int(b.length)).subarray(0, 1 + r.int(64));
      return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
    },
  ],
  [
    'non-finite-float',
    (b, r, g) => {
      const m = Buffer.from(b);
      const [lo, hi] = g.data;
      const at = lo + 4 * r.int(Math.floor((hi - lo) / 4) - 1);
      m.writeUInt32LE(r.pick(NON_FINITE), at);
      return m;
    },
  ],
];

/** Header edits of a safetensors file that keep it well-formed JSON and keep its checksums. */
const SAFETENSORS_KINDS = [
  [
    'header-length',
    (b, r) => {
      const m = Buffer.from(b);
      const n = Number(m.readBigUInt64LE(0));
      const choices = [n - 1, n + 1, n - 8, n + 8, 0, r.int(2 ** 32), 2 ** 53];
      m.writeBigUInt64LE(BigInt(Math.max(0, r.pick(choices))), 0);
      return m;
    },
  ],
  [
    'edit-header-json',
    (b, r) => {
      const { header, data } = layout(b);
      const json = JSON.parse(b.subarray(header[0], header[1]).toString('utf8'));
      const names = Object.keys(json).filter((k) => k !== '__metadata__');
      const t = json[r.pick(names)];
      const meta = json.__metadata__;
      const spec = JSON.parse(meta.spec);
      const edits = [
        () => (t.dtype = r.pick(['F16', 'BF16', 'F32', 'F64', 'I32', 'U8'])),
        () => t.shape.reverse(),
        () => (t.shape = [...t.shape, 1]),
        () => (t.shape[0] = Math.max(0, t.shape[0] + r.pick([-1, 1]))),
        () => (t.data_offsets = t.data_offsets.map((o) => o + r.pick([-4, 4, 2]))),
        () => delete json[r.pick(names)],
        () => (json[`extra_${r.int(9)}`] = { ...t }),
        () => (spec[r.pick(Object.keys(spec))] = r.pick([null, 'yes', 2, 1.5, true, -1, {}])),
        () => delete spec[r.pick(Object.keys(spec))],
        () => (spec.numLayers = r.pick([1, 3])),
        () => delete meta[r.pick(Object.keys(meta))],
        () => (meta.tokenizer = meta.tokenizer.replace('"a"', '"z"')),
      ];
      r.pick(edits)();
      meta.spec = JSON.stringify(spec);
      let text = Buffer.from(JSON.stringify(json), 'utf8');
      text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(text.length));
      return Buffer.concat([length, text, b.subarray(data[0])]);
    },
  ],
];

/** Model edits of an .onnx file that keep it decodable and keep its checksums. */
const ONNX_KINDS = [
  [
    'edit-onnx-model',
    (b, r) => {
      const m = onnx.ModelProto.decode(b);
      const g = m.graph;
      const meta = (key) => m.metadataProps.find((p) => p.key === key);
      const init = r.pick(g.initializer);
      const node = r.pick(g.node);
      const edits = [
        () => (init.dims = [...init.dims].reverse()),
        () => (init.dataType = r.pick([1, 7, 10, 11])),
        () => g.initializer.splice(g.initializer.indexOf(init), 1),
        () => (init.name = `${init.name}x`),
        () => (node.opType = r.pick(['Gemm', 'Relu', 'Tanh', 'LSTM', 'Nope'])),
        () => (node.input = [...node.input].reverse()),
        () => node.attribute.forEach((a) => (a.i = a.i ? Number(a.i) + 1 : 0)),
        () => g.node.splice(g.node.indexOf(node), 1),
        () => (g.input[r.int(g.input.length)].name = 'renamed'),
        () => {
          const spec = JSON.parse(meta('spec').value);
          spec[r.pick(Object.keys(spec))] = r.pick([null, 'yes', 2, 1.5, true, 0]);
          meta('spec').value = JSON.stringify(spec);
        },
        () => (meta('tokenizer').value = meta('tokenizer').value.replace('"a"', '"z"')),
        () => (m.opsetImport[0].version = r.pick([7, 13, 18, 99])),
      ];
      r.pick(edits)();
      return Buffer.from(onnx.ModelProto.encode(m).finish());
    },
  ],
];

function model(cell, seed) {
  return new LanguageModel({
    tokenizer: CharTokenizer.fromText('abcdefgh ijklmnop. qrstuvwxyz'),
    cell,
    hiddenSize: 16,
    embeddingSize: 8,
    numLayers: 2,
    seed,
  });
}

/** The good files each format's mutants start from. */
async function originals(dir) {
  const st = [];
  for (const [cell, dtype] of [
    ['lstm', 'float32'],
    ['gru', 'float16'],
  ]) {
    const file = path.join(dir, `original-${cell}-${dtype}.safetensors`);
    await model(cell, 3).save(file, { dtype });
    st.push(file);
  }
  const ox = [];
  for (const [cell, kind] of [
    ['lstm', 'step'],
    ['rnn', 'sequence'],
  ]) {
    const file = path.join(dir, `original-${cell}-${kind}.onnx`);
    fs.writeFileSync(file, buildOnnx(model(cell, 4), { kind }));
    ox.push(file);
  }
  return { safetensors: st, onnx: ox };
}

function regions(format, bytes) {
  if (format === 'safetensors') return layout(bytes);
  // ONNX: the initializers' raw data dominate the file; a tenth at each end holds most else.
  const n = bytes.length;
  return { header: [0, Math.ceil(n / 10)], data: [Math.floor(n / 10), n] };
}

/** Runs the child over files[from..], resolving with its results and where it stopped. */
function runChild(format, listFile, from, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [path.join(__dirname, 'fuzz-load-child.js'), format, listFile, String(from)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const results = [];
    let current = -1;
    let buffered = '';
    let stderr = '';
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, timeoutMs);
    };
    let hung = false;
    child.stdout.on('data', (d) => {
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith('start ')) {
          current = Number(line.slice(6));
          arm();
        } else {
          results.push(JSON.parse(line));
          current = -1;
        }
      }
    });
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ results, failedAt: current, hung, code, signal, stderr });
    });
    arm();
  });
}

async function main() {
  const perFormat = Number(option('mutants', '300'));
  const seed = Number(option('seed', '1'));
  const timeoutMs = Number(option('timeout', '20000'));
  const only = option('format', null);
  const keep = option('keep', null);
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-fuzz-'));
  fs.mkdirSync(dir, { recursive: true });
  const base = await originals(dir);
  const summary = {
    seed,
    mutantsPerFormat: perFormat,
    outcomes: ['refused', 'identical', 'served', 'crash', 'hang'],
    formats: {},
  };
  for (const format of ['safetensors', 'onnx']) {
    if (only && only !== format) continue;
    const kinds = [...BYTE_KINDS, ...(format === 'onnx' ? ONNX_KINDS : SAFETENSORS_KINDS)];
    const r = generator(seed * 7919 + (format === 'onnx' ? 1 : 0));
    const files = [...base[format]];
    const kindOf = base[format].map(() => 'original');
    for (let i = 0; i < perFormat; i++) {
      // Every kind in turn, so that each runs perFormat / kinds times.
      const [kind, mutate] = kinds[i % kinds.length];
      const original = base[format][r.int(base[format].length)];
      const bytes = fs.readFileSync(original);
      let mutant;
      try {
        mutant = mutate(bytes, r, regions(format, bytes));
      } catch {
        mutant = bytes.subarray(0, r.int(bytes.length));
      }
      const file = path.join(dir, `${format}-${i}-${kind}.${format}`);
      fs.writeFileSync(file, mutant);
      files.push(file);
      kindOf.push(`${kind}|${original}`);
    }
    const listFile = path.join(dir, `${format}-list.json`);
    fs.writeFileSync(listFile, JSON.stringify(files));

    const outcome = new Array(files.length).fill(null);
    const details = [];
    let from = 0;
    while (from < files.length) {
      const run = await runChild(format, listFile, from, timeoutMs);
      for (const res of run.results) outcome[res.i] = res;
      if (run.failedAt < 0 && run.code === 0) break;
      const at = run.failedAt >= 0 ? run.failedAt : from + run.results.length;
      outcome[at] = {
        i: at,
        [run.hung ? 'hang' : 'crash']:
          `${run.signal ?? run.code}: ${run.stderr.trim().split('\n').pop()}`,
      };
      from = at + 1;
    }
    const fingerprint = new Map(base[format].map((f, i) => [f, outcome[i]?.loaded]));
    if (base[format].some((f) => !fingerprint.get(f))) {
      throw new Error(
        `an original ${format} file did not load: ${JSON.stringify(outcome.slice(0, base[format].length))}`,
      );
    }
    const counts = { refused: 0, identical: 0, served: 0, crash: 0, hang: 0 };
    const perKind = {};
    for (let i = base[format].length; i < files.length; i++) {
      const o = outcome[i];
      const [kind, original] = kindOf[i].split('|');
      let verdict;
      if (!o) verdict = 'crash';
      else if (o.crash) verdict = 'crash';
      else if (o.hang) verdict = 'hang';
      else if (o.refused !== undefined) verdict = 'refused';
      else verdict = o.loaded === fingerprint.get(original) ? 'identical' : 'served';
      counts[verdict]++;
      perKind[kind] ??= { refused: 0, identical: 0, served: 0, crash: 0, hang: 0 };
      perKind[kind][verdict]++;
      if (verdict === 'refused' && !o.refused.includes(files[i])) {
        details.push({ file: files[i], problem: `error does not name the file: ${o.refused}` });
      }
      if (verdict !== 'refused' && verdict !== 'identical') {
        details.push({ file: files[i], verdict, detail: o?.crash ?? o?.hang ?? '' });
      }
    }
    summary.formats[format] = {
      mutants: files.length - base[format].length,
      ...counts,
      perKind,
      problems: details.slice(0, 20),
    };
  }
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  // One line per mutation kind: its counts in the order of `outcomes`.
  console.log(
    JSON.stringify(summary, (key, value) =>
      key === 'perKind'
        ? Object.fromEntries(Object.entries(value).map(([k, c]) => [k, Object.values(c).join(' ')]))
        : value,
    ).replace(/("perKind"|"problems"|"safetensors"|"onnx")/g, '\n  $1'),
  );
  const bad = Object.values(summary.formats).some(
    (f) => f.crash + f.hang + f.served > 0 || f.problems.length > 0,
  );
  process.exit(bad ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
