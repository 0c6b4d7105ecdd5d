#!/usr/bin/env node
// Finishes dist/ after tsc: writes dist/index.mjs, the ESM entry point, which re-exports the
// CommonJS build by name so that `import { LanguageModel } from 'rnnkit'` and `require('rnnkit')`
// share one module instance; and makes the package's bin executable (tsc writes files 0644, and
// `npx rnnkit` in a clone of the repository runs the file itself).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = path.resolve(__dirname, '..', 'dist');
const api = require(path.join(dist, 'index.js'));
const names = Object.keys(api).filter((n) => n !== 'default' && n !== '__esModule');
const lines = [
  "import api from './index.js';",
  ...names.map((n) => `export const ${n} = api.${n};`),
  'export default api;',
  '',
];
fs.writeFileSync(path.join(dist, 'index.mjs'), lines.join('\n'));
const { bin } = require(path.join(__dirname, '..', 'package.json'));
for (const file of Object.values(bin)) fs.chmodSync(path.join(__dirname, '..', file), 0o755);
