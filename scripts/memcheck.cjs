// The native paths of the built package on small models, for a memory checker to watch:
//   npm run memcheck   (valgrind --error-exitcode=1 node scripts/memcheck.cjs; needs `npm run build`)
// The serving engine's generation comes first, so that the process's first product is a packed
// one in the engine's worker thread, as in a server that starts; then language-model training
// (every cell, stacked, dropout, residual) and evaluation, generation in float32, int8 and bf16,
// seq2seq training and greedy and beam search (every attention kind, input feeding, a
// bidirectional encoder, every weight type), and BPE training and encoding. Prints what each step
// produced; valgrind reports what it read or freed wrongly.
const rnnkit = require('../dist/index.js');

const TEXT = 'the quick brown fox jumps over the lazy dog. '.repeat(40);

async function main() {
  const tokenizer = rnnkit.CharTokenizer.fromText(TEXT);
  const first = new rnnkit.LanguageModel({ tokenizer, hiddenSize: 16, embeddingSize: 8, seed: 2 });
  const greedy = { prompts: ['the', 'a quick'], maxTokens: 5, temperature: 0 };
  const engine = await rnnkit.BatchingGenerator.fromModel(first);
  console.log('first generation (serving engine):', (await engine.generate(greedy)).join(' | '));
  await engine.close();

  for (const cell of ['lstm', 'gru', 'rnn']) {
    const m = new rnnkit.LanguageModel({
      tokenizer,
      hiddenSize: 12,
      embeddingSize: 6,
      numLayers: 2,
      cell,
      dropout: 0.2,
      residual: cell === 'gru',
      seed: 1,
    });
    await m.fit(TEXT, { steps: 3, batchSize: 4, seqLength: 10 });
    const loss = m.evaluate(TEXT.slice(0, 200)).loss.toFixed(3);
    for (const q of [m, m.quantize('int8'), m.quantize('bf16')]) {
      const text = (await q.generate(greedy)).join(' | ');
      console.log(`${cell} (loss ${loss}) ${q.quantization?.dtype ?? 'float32'}: ${text}`);
    }
  }

  const src = rnnkit.CharTokenizer.fromText('abcdefgh');
  const tgt = rnnkit.CharTokenizer.fromText('0123456789', {
    specials: ['<pad>', '<bos>', '<eos>'],
  });
  const pairs = Array.from({ length: 40 }, (_, i) => ({
    source: 'abcdefgh'.slice(i % 5, 3 + (i % 5)),
    target: String(i),
  }));
  for (const attention of ['dot', 'general', 'additive']) {
    const s = new rnnkit.Seq2Seq({
      sourceTokenizer: src,
      targetTokenizer: tgt,
      embeddingSize: 6,
      hiddenSize: 12,
      attention,
      inputFeeding: attention !== 'dot',
      bidirectional: attention === 'additive',
      seed: 1,
    });
    await s.fit(pairs, { steps: 2, batchSize: 8 });
    for (const q of [s, s.quantize('int8'), s.quantize('bf16')]) {
      for (const beam of [1, 3]) {
        const out = await q.translate(['abc', 'hgfed'], { beam, maxLength: 6 });
        const type = q.quantization?.dtype ?? 'float32';
        console.log(`${attention} ${type} beam ${beam}: ${out.map((t) => t.text).join(' | ')}`);
      }
    }
  }

  const bpe = await rnnkit.BpeTokenizer.train(TEXT, { vocabSize: 300 });
  console.log('bpe:', Array.from(bpe.encode('the lazy fox')).join(' '));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
