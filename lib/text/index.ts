export { CharTokenizer } from './char';
export { validateCorpus } from './corpus';
export { tokenizerFromJSON } from './from-json';
export type {
  CharTokenizerJSON,
  EncodeOptions,
  Tokenizer,
  TokenizerJSON,
  TokenizerKind,
  TokenizerOptions,
  UnknownPolicy,
  WordTokenizerJSON,
} from './tokenizer';
export { WordTokenizer, type WordTokenizerOptions } from './word';
