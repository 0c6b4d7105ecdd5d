// Constants more than one layer reads: the checkpoint and ONNX metadata format name, the package
// version (read from package.json, its one definition) and the finish codes of a generated row.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The metadata 'format' of every file rnnkit writes (checkpoints and ONNX exports). */
export const FORMAT = 'rnnkit';

/** The package version, as package.json gives it (lib/core and dist/core are both two levels down). */
export const VERSION: string = (
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

/** Why a generated row ended: its token budget, a stop sequence, a cancellation, or an error. */
export const FINISH_LENGTH = 0;
export const FINISH_STOP = 1;
export const FINISH_CANCELLED = 2;
/**
 * No logit of the row's last step was finite (NaN or infinite weights, or an overflow): the row
 * keeps the tokens it had, and a per-step token callback saw -1 for that step.
 */
export const FINISH_ERROR = 3;
