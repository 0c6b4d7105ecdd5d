// rnnkit's public API.
import { LanguageModel } from './api/language-model';
import {
  loadCheckpoint as readCheckpoint,
  type CheckpointContents,
} from './checkpoint/language-model';
import { native, type NativeInfo } from './core/native';
import type { LoadOptions } from './checkpoint/verify';
import type { InferenceWeights } from './nn/quantize';

export { Module, Parameter } from './nn/parameter';
export { Embedding } from './nn/embedding';
export { Linear } from './nn/linear';
export { SoftmaxCrossEntropy, type CrossEntropyOptions } from './nn/loss';
export {
  RecurrentStack,
  RNN,
  LSTM,
  GRU,
  type CellType,
  type RecurrentOptions,
  type RecurrentState,
  type RecurrentForwardOptions,
  type RecurrentLayerWeights,
} from './nn/recurrent';
export {
  Adam,
  SGD,
  clipGradNorm,
  type Optimizer,
  type AdamOptions,
  type SgdOptions,
} from './train/optim';
export { Random } from './core/random';

/** Sets the number of threads the GEMM uses. */
export function setThreads(threads: number): void {
  native.setThreads(threads);
}

export type { NativeInfo };
export { info, type Info, type Precision } from './core/native';

export { LanguageModel } from './api/language-model';
export { INFERENCE_WEIGHTS, type InferenceWeights } from './nn/quantize';
export type { Quantization } from './nn/quantize';
export {
  type LanguageModelConfig,
  type LanguageModelSpec,
  type ForwardResult,
  type TokenBatch,
} from './models/language-model';
export type { FitOptions, FitResult } from './train/fit';
export type { History, Progress, LrSchedule, StopReason } from './train/loop';
export type { GenerateOptions, StreamOptions, SamplingOptions } from './decode/options';
export type { TextGenerator, GeneratorInfo } from './decode/text-generator';
export type { Completion, FinishReason, StreamEnd } from './decode/token-loop';
export {
  BpeTokenizer,
  CharTokenizer,
  SentencePieceTokenizer,
  WordTokenizer,
  fromHuggingFaceJSON,
  toHuggingFaceJSON,
  tokenizerFromJSON,
  validateCorpus,
  type BpeTrainOptions,
  type DecodeOptions,
  type Tokenizer,
  type TokenizerJSON,
} from './text';
export { readSafetensors, writeSafetensors, writeFileAtomic } from './checkpoint';
export {
  saveCheckpoint,
  type CheckpointContents,
  type LoadOptions,
} from './checkpoint/language-model';
export type { WeightsDType } from './checkpoint/format';
export type { ResumeState, TrainingState } from './checkpoint/resume';

/** Loads a language-model checkpoint: the model, and its training state when it was saved. */
export function loadCheckpoint(
  path: string,
  options?: LoadOptions,
): Promise<CheckpointContents<LanguageModel>> {
  return readCheckpoint(path, LanguageModel, options);
}

/**
 * Loads a language model saved with `model.save(path)` (see LoadOptions for the checks; `weights`
 * quantizes a float32 checkpoint as it loads, see LanguageModel.load).
 */
export function loadModel(
  path: string,
  options?: LoadOptions & { weights?: InferenceWeights },
): Promise<LanguageModel> {
  return LanguageModel.load(path, options);
}
export { exportOnnx, buildOnnx, type ExportOptions } from './onnx/export';
export { readOnnxModel, type OnnxKind, type OnnxModelInfo } from './onnx/format';
export { OnnxGenerator, type OnnxGeneratorOptions } from './onnx/generator';
export {
  buildSeq2SeqOnnx,
  exportSeq2SeqOnnx,
  type Seq2SeqExportOptions,
} from './onnx/seq2seq-export';
export {
  readOnnxSeq2Seq,
  seq2seqOnnxPaths,
  type OnnxSeq2SeqInfo,
  type Seq2SeqPart,
} from './onnx/seq2seq-format';
export { OnnxSeq2Seq, type OnnxSeq2SeqOptions } from './onnx/seq2seq';
export { Seq2Seq } from './api/seq2seq';
export type { Seq2SeqConfig, Seq2SeqSpec } from './models/seq2seq';
export { Attention, type AttentionKind, type AttentionOptions } from './nn/attention';
export type { Seq2SeqFitOptions } from './train/seq2seq-fit';
export type {
  TranslateOptions,
  Translation,
  Hypothesis,
  Translator,
  BeamOptions,
} from './decode/translate';
export { corpusBleu, bleuTokens, type BleuScore } from './train/bleu';
export { attentionHeatmapSvg } from './decode/heatmap';
export { datePairs, dateAlphabet, type DatePair } from './text/dates';
export { parsePairs, type PairsFormat, type TextPair } from './text/pairs';
export { pairBatch, sourceBatch, type PairBatch, type SourceBatch } from './text/batch';
export {
  BatchingGenerator,
  QueueFullError,
  QueueTimeoutError,
  type BatchingOptions,
} from './serve/batching';
export { startServer, type ServerOptions, type RunningServer } from './serve/http';
export type { RequestLimits } from './serve/request';
