// Child of native-memory.test.ts: loads a model, generates, drops it, `cycles` times, and prints
// the resident set size after each cycle as JSON. The first argument picks the backend: 'native'
// (loadModel, generate on the native token loop, close) or 'onnx' (OnnxGenerator.load, generate,
// close).
'use strict';
const path = require('node:path');

const { loadModel, OnnxGenerator } = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));

const [backend, file, cyclesArg] = process.argv.slice(2);
const options = { prompts: ['the cat', 'a'], maxTokens: 6, seed: 1 };

(async () => {
  const rss = [];
  for (let i = 0; i < Number(cyclesArg); i++) {
    if (backend === 'native') {
      const model = await loadModel(file);
      await model.generate(options);
      await model.close();
    } else {
      const generator = await OnnxGenerator.load(file, { threads: 1 });
      await generator.generate(options);
      await generator.close();
    }
    rss.push(process.memoryUsage().rss);
  }
  process.stdout.write(JSON.stringify(rss));
})();
