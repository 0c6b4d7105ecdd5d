// The ES-module face of an installed rnnkit: named imports resolve and the default model generates.
import { info, loadModel } from 'rnnkit';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const pkg = path.dirname(createRequire(import.meta.url).resolve('rnnkit/package.json'));
const model = await loadModel(path.join(pkg, 'models', 'default.safetensors'));
const [text] = await model.generate({ prompts: ['JULIET:'], maxTokens: 30, temperature: 0 });
if (!text) throw new Error('smoke.mjs: nothing generated');
console.log(`smoke.mjs: ${info().isa} kernels: ${JSON.stringify(text.slice(0, 50))}`);
