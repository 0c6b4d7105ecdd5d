export { BpeTokenizer, type BpeTrainOptions } from './bpe';
export { CharTokenizer } from './char';
export { validateCorpus } from './corpus';
export { tokenizerFromJSON } from './from-json';
export { SentencePieceTokenizer } from './sentencepiece';
export type {
  BpeTokenizerJSON,
  CharTokenizerJSON,
  DecodeOptions,
  EncodeOptions,
  SentencePieceTokenizerJSON,
  Tokenizer,
  TokenizerJSON,
  TokenizerKind,
  TokenizerOptions,
  UnknownPolicy,
  WordTokenizerJSON,
} from './tokenizer';
export { WordTokenizer, type WordTokenizerOptions } from './word';
export { fromHuggingFaceJSON, toHuggingFaceJSON } from './hf-tokenizer-json';
