export { writeFileAtomic } from '../core/atomic';
export {
  type DType,
  parseSafetensors,
  readSafetensors,
  type SafetensorsContents,
  serializeSafetensors,
  type Tensor,
  writeSafetensors,
} from './safetensors';
