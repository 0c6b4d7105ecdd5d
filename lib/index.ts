// rnnkit's public API.
import { native, type NativeInfo } from './native';

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
export { Adam, SGD, clipGradNorm, type Optimizer, type AdamOptions, type SgdOptions } from './train/optim';
export { Random } from './random';

/** What the native addon was built with: GEMM backend and its threads, CUDA, version. */
export function info(): NativeInfo {
  return native.info();
}

/** Sets the number of threads the GEMM uses. */
export function setThreads(threads: number): void {
  native.setThreads(threads);
}

export type { NativeInfo };
