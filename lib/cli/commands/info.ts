// rnnkit info: what the native addon was built with and chose on this machine.
import { VERSION } from '../../core/constants';
import { native } from '../../core/native';
import { command } from '../command';

export const info = command({
  summary: 'what the native addon was built with',
  usage: 'rnnkit info',
  flags: {},
  async run() {
    const i = native.info();
    const blas = i.gemm === 'openblas' ? `OpenBLAS (${i.blasCore} kernels)` : 'none';
    process.stdout.write(
      `rnnkit ${VERSION}\nBLAS: ${blas}; built-in GEMM: ${i.builtinVectorBits}-bit vectors\n` +
        `GEMM for products of 16+ rows: ${i.products === 'openblas' ? 'OpenBLAS' : 'built-in'}, ` +
        `${i.threads} thread(s)\nCUDA: ${i.cuda ? 'compiled' : 'not compiled'}\nNode ${process.version}\n`,
    );
  },
});
