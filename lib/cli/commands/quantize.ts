// rnnkit quantize: a trained model's weights (language model or seq2seq) to int8 or bfloat16, for
// inference.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { LanguageModel } from '../../api/language-model';
import { Seq2Seq } from '../../api/seq2seq';
import { readSafetensors } from '../../checkpoint/safetensors';
import { INFERENCE_WEIGHTS } from '../../nn/quantize';
import { checkOutputPath, choice, text, UsageError } from '../args';
import { command } from '../command';

const mib = (file: string) => (fs.statSync(file).size / 2 ** 20).toFixed(1);

export const quantize = command({
  summary: 'store a trained model with int8 or bfloat16 weights, for inference',
  usage: 'rnnkit quantize --model FILE --out FILE --dtype int8|bf16',
  flags: {
    model: text(
      'FILE',
      'a model saved by train or seq2seq train (.safetensors, float32 or float16)',
    ),
    out: text('FILE', 'the quantized checkpoint to write; replaced atomically'),
    dtype: choice(
      INFERENCE_WEIGHTS,
      'int8: one scale per weight row, activations quantized at each step;\n' +
        'bf16: bfloat16 weights, float32 arithmetic',
    ),
  },
  notes:
    'The recurrent weights, the attention matrices and the output layer are quantized;\n' +
    'embeddings, biases and the seq2seq bridge stay float32. generate, evaluate and serve\n' +
    '(language models) and translate (seq2seq) take the file as they take any model; it cannot\n' +
    'be trained.\n' +
    'See docs/quantization.md for the quality and speed measured.',
  async run(v) {
    if (!v.model || !v.out || !v.dtype) {
      throw new UsageError('quantize needs --model FILE, --out FILE and --dtype int8|bf16');
    }
    checkOutputPath(v.out);
    if (path.resolve(v.out) === path.resolve(v.model)) {
      throw new UsageError('--out names the --model file; write the quantized model beside it');
    }
    const { metadata } = await readSafetensors(v.model);
    const Model = metadata.kind === 'seq2seq' ? Seq2Seq : LanguageModel;
    const model = (await Model.load(v.model)).quantize(v.dtype);
    await model.save(v.out);
    process.stdout.write(
      `quantized ${model.describe()} to ${v.dtype}: ${v.out} (${mib(v.out)} MiB, from ${mib(v.model)} MiB)\n`,
    );
  },
});
