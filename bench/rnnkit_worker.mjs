// One rnnkit measurement in its own process (so that its peak RSS is its own), started by
// bench/run.mjs as `node bench/rnnkit_worker.mjs '<task JSON>'`. Task kinds:
//   workload     a workload of bench/workloads.mjs at a thread count (with `onnx`, a file: the
//                generate workload through rnnkit's OnnxGenerator instead of the native loop)
//   ceiling      GFLOP/s of the native gemm at a list of shapes
//   export-onnx  rnnkit's ONNX export (step model, opset 14) of the workload's model (int8
//                workloads: quantized) to `path`
import { Unavailable, peakRssMB, randomFloats, runWorker, timeIterations } from './common.mjs';
import {
  buildModel,
  loadRnnkit,
  prepareOnnxGenerator,
  prepareWorkload,
} from './rnnkit_workload.mjs';
import { stepsPerIteration } from './workloads.mjs';

await runWorker(async (task) => {
  const { rnnkit, native } = loadRnnkit(task.threads);
  const info = rnnkit.info();
  const baselineRssMB = peakRssMB();
  const timing = { reps: task.reps, minRepMs: task.minRepMs };
  const w = task.workload;
  if (task.kind === 'ceiling') {
    return { info, baselineRssMB, ...(await ceiling(native, task, timing)) };
  }
  if (task.kind === 'export-onnx') {
    if (typeof rnnkit.exportOnnx !== 'function') {
      throw new Unavailable('rnnkit ONNX export (exportOnnx) is not in this build');
    }
    const model = buildModel(rnnkit, w);
    // An int8 workload's model as rnnkit's int8 rows run it: the same weights, quantized.
    const exported = w.weights === 'int8' ? model.quantize('int8') : model;
    await rnnkit.exportOnnx(exported, task.path, { kind: 'step', opset: 14 });
    return { path: task.path };
  }
  const { iteration, finish } = task.onnx
    ? await prepareOnnxGenerator(rnnkit, w, task.onnx, task.threads)
    : prepareWorkload(rnnkit, native, w);
  const r = await timeIterations(iteration, timing);
  const msPerStep = r.msPerIteration / stepsPerIteration(w);
  return { info, baselineRssMB, ...r, msPerStep, ...(await finish()) };
});

/**
 * GFLOP/s of the exported native gemm at each shape, median of reps: the kernel rnnkit's layers
 * use ('auto', the ceiling) and, with OpenBLAS in the build, OpenBLAS and the built-in GEMM each
 * on its own, for comparison. Each also per second of process CPU time (the load-independent
 * figure at one thread).
 */
async function ceiling(native, task, timing) {
  const withBlas = native.info().gemm !== 'builtin';
  const shapes = [];
  for (const s of task.shapes) {
    const A = randomFloats(s.M * s.K, 1);
    const B = randomFloats(s.K * s.N, 2);
    const C = new Float32Array(s.M * s.N);
    const flops = 2 * s.M * s.N * s.K;
    const rate = async (kernel) => {
      const shape = { ...s, kernel, alpha: 1, beta: 0 };
      const r = await timeIterations(() => native.gemm(shape, A, B, C), timing);
      const gflops = flops / r.msPerIteration / 1e6;
      return { ms: r.msPerIteration, gflops, cpuGflops: flops / r.cpuMsPerIteration / 1e6 };
    };
    const auto = await rate('auto');
    const blas = withBlas ? await rate('blas') : auto;
    const builtin = withBlas ? await rate('builtin') : auto;
    shapes.push({
      ...s,
      msPerCall: auto.ms,
      gflops: auto.gflops,
      cpuGflops: auto.cpuGflops,
      blasGflops: blas.gflops,
      blasCpuGflops: blas.cpuGflops,
      builtinGflops: builtin.gflops,
      builtinCpuGflops: builtin.cpuGflops,
    });
  }
  return { shapes };
}
