// Coverage-guided fuzz target (Jazzer.js) for the safetensors reader and what a checkpoint load
// does with a parsed file before building the model: checksums, the JSON metadata (spec,
// tokenizer, training state). Run it with `npm run fuzz:safetensors` (-- -max_total_time=N for
// longer; a corpus directory keeps what it learnt). Needs the built library (npm run build).
//
// Any input may be refused, but only with the loaders' own errors. A finding is anything else:
// an exception of the engine itself (a property read of undefined, a stack overflow, an invalid
// array length: a code path the checks missed), or a value that is not an Error.
'use strict';
const path = require('node:path');

const dist = path.join(__dirname, '..', '..', 'dist');
const { parseSafetensors } = require(path.join(dist, 'checkpoint', 'safetensors.js'));
const { verifyFileChecksums } = require(path.join(dist, 'checkpoint', 'verify.js'));
const { metadataJson, readTrainingState } = require(path.join(dist, 'checkpoint', 'resume.js'));
const { tokenizerFromJSON } = require(path.join(dist, 'text', 'index.js'));

const NAME = 'fuzz.safetensors';
const ENGINE_ERROR =
  /Cannot read prop|Cannot set prop|is not a function|is not iterable|is not defined|Maximum call stack|Invalid array length|Invalid typed array length|out of memory/;

module.exports.fuzz = function fuzz(data) {
  try {
    const file = parseSafetensors(data, NAME);
    verifyFileChecksums(NAME, file);
    const m = file.metadata;
    if (m.spec !== undefined) metadataJson(NAME, 'spec', m.spec);
    if (m.tokenizer !== undefined) tokenizerFromJSON(metadataJson(NAME, 'tokenizer', m.tokenizer));
    readTrainingState(NAME, file.tensors, m);
  } catch (error) {
    if (error instanceof Error && !ENGINE_ERROR.test(error.message)) return;
    throw error;
  }
};
