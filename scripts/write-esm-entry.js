#!/usr/bin/env node
// Writes dist/index.mjs, the ESM entry point: it re-exports the CommonJS build by name so that
// `import { LanguageModel } from 'rnnkit'` and `require('rnnkit')` share one module instance.
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
