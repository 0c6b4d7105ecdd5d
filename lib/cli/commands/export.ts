// rnnkit export: a trained model to ONNX (one file for a language model, two for a seq2seq model).
import * as fs from 'node:fs';

import { LanguageModel } from '../../api/language-model';
import { Seq2Seq } from '../../api/seq2seq';
import { readSafetensors } from '../../checkpoint/safetensors';
import { exportOnnx } from '../../onnx/export';
import { MAX_OPSET, MIN_OPSET } from '../../onnx/format';
import { exportSeq2SeqOnnx } from '../../onnx/seq2seq-export';
import { checkOutputPath, choice, int, text, UsageError } from '../args';
import { command } from '../command';

const mib = (files: string[]) =>
  (files.reduce((n, f) => n + fs.statSync(f).size, 0) / 2 ** 20).toFixed(1);

export const exportCommand = command({
  summary: 'export a trained model to ONNX, for onnxruntime in Node, Python or elsewhere',
  usage: 'rnnkit export --model FILE --out FILE.onnx [--kind step|sequence] [--opset N]',
  flags: {
    model: text('FILE', 'a model saved by train or seq2seq train (.safetensors)'),
    out: text(
      'FILE',
      'the .onnx file to write; replaced atomically. A sequence-to-sequence\n' +
        'model is written as two files beside it, FILE.encoder.onnx and\n' +
        'FILE.decoder.onnx (the encoder and the decoder step)',
    ),
    kind: choice(
      ['step', 'sequence'],
      'language models: sequence (default): tokens [time, batch], primes a\n' +
        'prompt in one call and runs single steps with time = 1; step: tokens\n' +
        '[1, batch], for runtimes that want a fixed shape. An int8 model\n' +
        '(rnnkit quantize) exports as an int8 step model (the default for it)',
    ),
    opset: int(
      'N',
      `ONNX opset, ${MIN_OPSET} to ${MAX_OPSET} (default ${MAX_OPSET})`,
      { min: MIN_OPSET, max: MAX_OPSET },
      MAX_OPSET,
    ),
  },
  notes:
    "The vocabulary and the model config travel in the file's metadata, so the .onnx file alone is\n" +
    'enough to generate (OnnxGenerator), and the two files of a sequence-to-sequence model to\n' +
    'translate (OnnxSeq2Seq). See docs/onnx.md for their inputs and outputs.',
  async run(v) {
    if (!v.model || !v.out) throw new UsageError('export needs --model FILE and --out FILE.onnx');
    const { opset, out } = v;
    checkOutputPath(out);
    if ((await readSafetensors(v.model)).metadata.kind === 'seq2seq') {
      if (v.kind !== undefined) {
        throw new UsageError(
          '--kind is for language models; a sequence-to-sequence model is exported as its ' +
            'encoder and its decoder step',
        );
      }
      const model = await Seq2Seq.load(v.model);
      const files = await exportSeq2SeqOnnx(model, out, { opset });
      process.stdout.write(
        `exported ${model.describe()} to ${files.encoder} and ${files.decoder} ` +
          `(opset ${opset}, ${mib([files.encoder, files.decoder])} MiB)\n`,
      );
      return;
    }
    const model = await LanguageModel.load(v.model);
    const int8 = model.quantization?.dtype === 'int8';
    const kind = v.kind ?? (int8 ? 'step' : 'sequence');
    if (int8 && kind !== 'step') {
      throw new UsageError(
        `--kind ${kind}: an int8 model exports as a step model only (--kind step, its default)`,
      );
    }
    await exportOnnx(model, out, { kind, opset });
    process.stdout.write(
      `exported ${model.describe()} to ${out} (${kind} model, opset ${opset}, ${mib([out])} MiB)\n`,
    );
  },
});
