// rnnkit info: which addon build was loaded for this CPU, and what it chose on this machine.
import { VERSION } from '../../core/constants';
import { info as runtimeInfo } from '../../core/native';
import { command } from '../command';

export const info = command({
  summary: 'which addon build and GEMM run on this machine',
  usage: 'rnnkit info',
  flags: {},
  async run() {
    const i = runtimeInfo();
    const blas =
      i.gemm === 'openblas' ? `OpenBLAS (${i.blasCore} kernels, ${i.blasLibrary})` : 'none found';
    const measured = i.calibration
      ? ` (measured ${i.calibration.openblasGflops.toFixed(1)} vs ` +
        `${i.calibration.builtinGflops.toFixed(1)} GFLOP/s on one core)`
      : '';
    const bf16 =
      i.bf16.products ??
      `none (${i.bf16.amxBf16 ? 'AMX-BF16 but ' : ''}no AVX512-BF16; train --precision bf16 is refused)`;
    process.stdout.write(
      `rnnkit ${VERSION}\nCPU: ${i.cpu || 'unnamed'}; kernels: ${i.isa} (${i.addonSource}: ${i.addon})\n` +
        `BLAS: ${blas}; built-in GEMM: ${i.builtinVectorBits}-bit vectors\n` +
        `GEMM for products of 16+ rows: ${i.products === 'openblas' ? 'OpenBLAS' : 'built-in'}${measured}, ` +
        `${i.threads} thread(s); int8 products: ${i.int8Kernel}\nbf16 training products: ${bf16}\nCUDA: ${i.cuda ? 'compiled' : 'not compiled'}\nNode ${process.version}\n`,
    );
  },
});
