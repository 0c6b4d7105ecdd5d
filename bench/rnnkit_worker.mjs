// One rnnkit measurement in its own process (so that its peak RSS is its own): a workload of
// bench/workloads.mjs at a given thread count, or the GEMM ceiling at a list of shapes.
// Started by bench/run.mjs as `node bench/rnnkit_worker.mjs '<task JSON>'`.
import { peakRssMB, randomFloats, runWorker, timeIterations } from './common.mjs';
import { loadRnnkit, prepareWorkload } from './rnnkit_workload.mjs';

await runWorker(async (task) => {
  const { rnnkit, native } = loadRnnkit(task.threads);
  const info = rnnkit.info();
  const baselineRssMB = peakRssMB();
  const timing = { reps: task.reps, minRepMs: task.minRepMs };
  if (task.kind === 'ceiling')
    return { info, baselineRssMB, ...(await ceiling(native, task, timing)) };
  const w = task.workload;
  const { iteration, finish } = prepareWorkload(rnnkit, native, w);
  const r = await timeIterations(iteration, timing);
  const per = w.kind === 'generate' ? w.steps : 1;
  return { info, baselineRssMB, ...r, msPerStep: r.msPerIteration / per, ...finish() };
});

/**
 * GFLOP/s of the exported native gemm (the BLAS rnnkit uses) at each shape, median of reps; and,
 * when that is OpenBLAS, of the built-in GEMM (single-threaded) too, for comparison.
 */
async function ceiling(native, task, timing) {
  const withBuiltin = native.info().gemm !== 'builtin';
  const shapes = [];
  for (const s of task.shapes) {
    const A = randomFloats(s.M * s.K, 1);
    const B = randomFloats(s.K * s.N, 2);
    const C = new Float32Array(s.M * s.N);
    const rate = async (builtin) => {
      const shape = { ...s, builtin, alpha: 1, beta: 0 };
      const r = await timeIterations(() => native.gemm(shape, A, B, C), timing);
      return { ms: r.msPerIteration, gflops: (2 * s.M * s.N * s.K) / r.msPerIteration / 1e6 };
    };
    const blas = await rate(false);
    const builtin = withBuiltin ? await rate(true) : blas;
    shapes.push({ ...s, msPerCall: blas.ms, gflops: blas.gflops, builtinGflops: builtin.gflops });
  }
  return { shapes };
}
