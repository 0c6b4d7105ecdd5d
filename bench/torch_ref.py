#!/usr/bin/env python3
"""PyTorch CPU reference for rnnkit's benchmark, one measurement per process.

bench/run.mjs starts it as ``python3 bench/torch_ref.py '<task JSON>'`` with OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE already in the environment
(they must be set before torch loads its thread pools). The task's ``kind`` is

  workload     time one workload of bench/workloads.mjs (the task carries the resolved shapes)
  export-onnx  write the one-step language model (tokens [1, B] int64 + states -> logits + new
               states, opset 14, dynamic batch) for onnxruntime-node to run
  probe        report the torch/onnx versions and the BLAS torch was built with

and the result is written as JSON to ``task["out"]``, as the Node workers do. The models are the
ones BENCH.md describes: the character LM nn.Embedding(65, E) -> nn.LSTM/GRU/RNN(E, H, L) ->
nn.Linear(H, 65), time-major, and the attentional seq2seq model written to compute what rnnkit's
Seq2Seq computes (build_seq2seq); both trained with Adam, clip_grad_norm_ 5 and mean
cross-entropy. The timing protocol mirrors bench/common.mjs timeIterations exactly. Only the
standard library, torch and onnx are used.
"""

import json
import math
import os
import re
import resource
import sys
import time
import traceback


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


class Unavailable(Exception):
    """Something the measurement needs is not installed: reported, not failed."""


def peak_rss_mb():
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values):
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def time_iterations(fn, reps, min_rep_ms):
    """bench/common.mjs timeIterations: calibrating warm-up, one warm repetition, `reps` timed."""
    t = time.perf_counter()
    fn()
    first_ms = (time.perf_counter() - t) * 1e3
    inner = max(1, math.ceil(min_rep_ms / max(first_ms, 1e-3)))
    for _ in range(inner):
        fn()
    samples = []
    cpu_samples = []
    for _ in range(reps):
        cpu = time.process_time()
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) * 1e3 / inner)
        cpu_samples.append((time.process_time() - cpu) * 1e3 / inner)
    return {
        "msPerIteration": median(samples),
        "samplesMs": samples,
        "cpuMsPerIteration": median(cpu_samples),
        "inner": inner,
        "warmupMs": first_ms,
    }


_TORCH = []


def import_torch(threads):
    """torch with its thread pools fixed; once per process (set_num_interop_threads may only run
    before any parallel work, and a second call aborts the process)."""
    if _TORCH:
        return _TORCH[0]
    try:
        import torch
    except ImportError as error:
        raise Unavailable("torch not installed (%s)" % error)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    _TORCH.append(torch)
    return torch


def torch_info(torch):
    config = torch.__config__.show()

    def setting(pattern):
        found = re.search(pattern, config)
        return found.group(1) if found else None

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": setting(r"BLAS_INFO=([^,\s]+)"),
        "cpuCapability": setting(r"CPU capability usage: (\S+)"),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
    }


def build_model(torch, w):
    nn = torch.nn
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[w["cell"]]
    extra = {"nonlinearity": "tanh"} if w["cell"] == "rnn" else {}

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(w["V"], w["E"])
            self.rnn = cls(w["E"], w["H"], w["L"], **extra)  # time-major, like rnnkit
            self.decoder = nn.Linear(w["H"], w["V"])

        def forward(self, tokens, state=None):
            y, state = self.rnn(self.embedding(tokens), state)
            return self.decoder(y), state

    torch.manual_seed(1)
    return CharLM()


def check_loss(loss):
    if not (math.isfinite(loss) and 0 < loss < 50):
        raise RuntimeError("implausible loss %r" % loss)


def train_loop(torch, model, loss_of, timing):
    """One optimizer step per iteration: zero_grad, loss_of() and backward, clip 5, Adam."""
    model.train()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(loss.item())

    r = time_iterations(train_step, **timing)
    for loss in losses:
        check_loss(loss)
    r.update(msPerStep=r["msPerIteration"], firstLoss=losses[0], lastLoss=losses[-1])
    return r


def run_workload(torch, task):
    w = task["workload"]
    timing = {"reps": task["reps"], "min_rep_ms": task["minRepMs"]}
    if w["family"] == "seq2seq":
        return run_seq2seq(torch, w, timing)
    F = torch.nn.functional
    model = build_model(torch, w)
    gen = torch.Generator().manual_seed(11)

    if w["kind"] == "generate":
        model.eval()
        B, steps = w["B"], w["steps"]
        start = (torch.arange(B) * 7 % (w["V"] - 1)).view(1, B)
        sampler = torch.Generator().manual_seed(1234)
        produced = [0]

        def generate():
            with torch.inference_mode():
                tokens, state, n = start, None, 0
                for _ in range(steps):
                    logits, state = model(tokens, state)
                    probs = torch.softmax(logits[0] / 1.0, dim=-1)  # temperature 1
                    tokens = torch.multinomial(probs, 1, generator=sampler).view(1, B)
                    n += B
                produced[0] = n

        r = time_iterations(generate, **timing)
        if produced[0] != B * steps:
            raise RuntimeError("generated %d tokens, expected %d" % (produced[0], B * steps))
        r["msPerStep"] = r["msPerIteration"] / steps
        return r

    T, B, V = w["T"], w["B"], w["V"]
    inputs = torch.randint(0, V, (T, B), generator=gen)
    targets = torch.randint(0, V, (T, B), generator=gen).view(-1)

    if w["kind"] == "forward":
        model.eval()
        result = {}

        def forward():
            with torch.inference_mode():
                logits, _ = model(inputs)
                result["sum"] = F.cross_entropy(logits.view(-1, V), targets, reduction="sum").item()

        r = time_iterations(forward, **timing)
        r["loss"] = result["sum"] / (T * B)
        check_loss(r["loss"])
        r["msPerStep"] = r["msPerIteration"]
        return r

    def loss_of():
        logits, _ = model(inputs)
        return F.cross_entropy(logits.view(-1, V), targets)

    return train_loop(torch, model, loss_of, timing)


def build_seq2seq(torch, w):
    """rnnkit's Seq2Seq (lib/models/seq2seq.ts) at the workload's sizes, in PyTorch: source
    Embedding(V, E) -> bidirectional LSTM(E, He) -> the two directions' final h and c, side by
    side, each through its own Linear(2He, H) bridge (no nonlinearity) to the decoder's initial
    state; target Embedding(V, E) -> LSTM(E, H) over all target steps (no input feeding) -> Luong
    attention over the encoder states (native/core/attention.h: score dot q.s, general q.(W_a s) or
    additive v.tanh(W_q q + W_k s) with A = H, softmax over the source, context = weights . states,
    attentional state tanh(W_c [context; q]); no biases) -> Linear(H, V). The benchmark's sources
    all have length S, so the softmax needs no padding mask (rnnkit's masks nothing either)."""
    nn = torch.nn
    V, E, He, H, kind = w["V"], w["E"], w["He"], w["H"], w["attention"]
    Ht = 2 * He

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            if kind != "dot":
                self.key = nn.Linear(Ht, H, bias=False)  # general W_a, additive W_k
            if kind == "additive":
                self.query = nn.Linear(H, H, bias=False)
                self.v = nn.Parameter(torch.empty(H).uniform_(-(H**-0.5), H**-0.5))
            self.combine = nn.Linear(Ht + H, H, bias=False)

        def keys(self, states):
            """The source-only part of the scores, once per source batch: [B, S, H]."""
            return states if kind == "dot" else self.key(states)

        def forward(self, q, states, keys):
            """q [B, T, H], states [B, S, Ht] -> attentional states [B, T, H]."""
            if kind == "additive":
                scores = torch.tanh(self.query(q).unsqueeze(2) + keys.unsqueeze(1)) @ self.v
            else:
                scores = torch.bmm(q, keys.transpose(1, 2))
            context = torch.bmm(torch.softmax(scores, dim=-1), states)
            return torch.tanh(self.combine(torch.cat([context, q], dim=-1)))

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.source_embedding = nn.Embedding(V, E)
            self.encoder = nn.LSTM(E, He, bidirectional=True)  # time-major, like rnnkit
            self.bridge_h = nn.Linear(Ht, H)
            self.bridge_c = nn.Linear(Ht, H)
            self.target_embedding = nn.Embedding(V, E)
            self.decoder = nn.LSTM(E, H)
            self.attention = Attention()
            self.output = nn.Linear(H, V)

        def encode(self, source):
            """source [S, B] -> states [B, S, Ht], their keys, the decoder's initial (h, c)."""
            states, (h, c) = self.encoder(self.source_embedding(source))
            h0 = self.bridge_h(torch.cat([h[0], h[1]], dim=-1)).unsqueeze(0)
            c0 = self.bridge_c(torch.cat([c[0], c[1]], dim=-1)).unsqueeze(0)
            states = states.transpose(0, 1).contiguous()
            return states, self.attention.keys(states), (h0, c0)

        def decode(self, tokens, states, keys, state):
            """tokens [T, R] -> logits [R, T, V] and the decoder's state after them."""
            y, state = self.decoder(self.target_embedding(tokens), state)
            attended = self.attention(y.transpose(0, 1), states, keys)
            return self.output(attended), state

    torch.manual_seed(1)
    return Seq2Seq()


def run_seq2seq(torch, w, timing):
    """Train: teacher forcing over T target steps, mean cross-entropy. Translate: as rnnkit's
    beam search (beam 1: greedy), B sources each expanded to `beam` hypotheses, `steps` token
    steps of log-softmax, each source's top `beam` continuations over beam x V, and the state
    gathered from their parents. As in rnnkit's workload the end token's output bias is set far
    down, so no hypothesis ends and every source yields `steps` tokens; this loop then needs no
    finished-hypothesis bookkeeping, and the length penalty, equal for all, changes no ranking."""
    F = torch.nn.functional
    model = build_seq2seq(torch, w)
    V, S, B = w["V"], w["S"], w["B"]
    gen = torch.Generator().manual_seed(21)
    source = torch.randint(0, V, (S, B), generator=gen)

    if w["kind"] == "train":
        T = w["T"]
        target_in = torch.randint(0, V, (T, B), generator=gen)
        target_out = torch.randint(0, V, (T, B), generator=gen)

        def loss_of():
            states, keys, initial = model.encode(source)
            logits, _ = model.decode(target_in, states, keys, initial)
            return F.cross_entropy(logits.reshape(-1, V), target_out.t().reshape(-1))

        return train_loop(torch, model, loss_of, timing)

    model.eval()
    K, steps = w["beam"], w["steps"]
    R = B * K
    with torch.no_grad():
        model.output.bias[w["eos"]] = -1e4
    first = torch.full((B, K), -math.inf)
    first[:, 0] = 0  # one live hypothesis per source
    base = (torch.arange(B) * K).view(B, 1)
    best = []

    def translate():
        with torch.inference_mode():
            states, keys, (h, c) = model.encode(source)
            states, keys = states.repeat_interleave(K, 0), keys.repeat_interleave(K, 0)
            state = (h.repeat_interleave(K, 1), c.repeat_interleave(K, 1))
            ids = torch.full((1, R), w["bos"])
            score = first.view(R, 1)
            history = torch.empty((R, 0), dtype=torch.long)
            for _ in range(steps):
                logits, (h, c) = model.decode(ids, states, keys, state)
                total = (score + torch.log_softmax(logits[:, 0], dim=-1)).view(B, K * V)
                top, index = total.topk(K, dim=-1)
                parent = (base + torch.div(index, V, rounding_mode="floor")).view(R)
                ids = (index % V).view(1, R)
                score = top.view(R, 1)
                state = (h[:, parent], c[:, parent])
                history = torch.cat([history[parent], ids.view(R, 1)], dim=1)
            best[:] = [history.view(B, K, steps)[:, 0]]

    r = time_iterations(translate, **timing)
    if best[0].shape != (B, steps) or bool((best[0] == w["eos"]).any()):
        raise RuntimeError("translate produced %r tokens, expected %d x %d" % (best[0], B, steps))
    r["msPerStep"] = r["msPerIteration"] / steps
    return r


def export_onnx(torch, task):
    """The one-step model for onnxruntime: tokens [1, B] + states -> logits [1, B, V] + states."""
    try:
        import onnx
    except ImportError as error:
        raise Unavailable("onnx not installed (%s)" % error)
    w = task["workload"]
    lm = build_model(torch, w).eval()
    lstm = w["cell"] == "lstm"

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = lm

        def forward(self, tokens, h0, c0=None):
            if lstm:
                logits, (h, c) = self.lm(tokens, (h0, c0))
                return logits, h, c
            logits, h = self.lm(tokens, h0)
            return logits, h

    example_b = 2  # not 1, so that no batch-size-1 shortcut is traced
    state = torch.zeros(w["L"], example_b, w["H"])
    args = (torch.zeros(1, example_b, dtype=torch.long), state) + ((state,) if lstm else ())
    inputs = ["tokens", "h0"] + (["c0"] if lstm else [])
    outputs = ["logits", "hn"] + (["cn"] if lstm else [])
    path = task["path"]
    torch.onnx.export(
        Step(),
        args,
        path,
        opset_version=14,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={name: {1: "batch"} for name in inputs + outputs},
        do_constant_folding=True,
    )
    model = onnx.load(path)
    onnx.checker.check_model(model)
    ops = sorted({node.op_type for node in model.graph.node})
    return {"path": path, "ops": ops, "onnx": onnx.__version__, "opset": 14}


def run_task(task):
    try:
        torch = import_torch(task.get("threads", 1))
        baseline = peak_rss_mb()
        kind = task["kind"]
        if kind == "workload":
            body = run_workload(torch, task)
        elif kind == "export-onnx":
            body = export_onnx(torch, task)
        elif kind == "probe":
            body = {}
        else:
            raise ValueError("unknown task kind %r" % kind)
        result = dict(status="ok", baselineRssMB=baseline, info=torch_info(torch), **body)
    except Unavailable as error:
        result = {"status": "unavailable", "reason": str(error)}
    except Exception:  # reported to the orchestrator, which fails the run
        result = {"status": "error", "reason": traceback.format_exc()}
    result["peakRssMB"] = peak_rss_mb()
    return result


def main(argv):
    """One task, or a list of them in `tasks` run in this one process (as common.mjs runWorker)."""
    task = json.loads(argv[1])
    if "tasks" in task:
        result = [run_task(t) for t in task["tasks"]]
    else:
        result = run_task(task)
    with open(task["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv)
