#!/usr/bin/env python3
"""PyTorch/cuDNN side of scripts/gpu-check.sh: times the workloads of native/tests/bench_cuda.cpp
(BENCH.md's train M for LSTM and GRU, generate M for batch 1, 64 and 256) on the same GPU and
prints them beside rnnkit's numbers.

Usage: gpu-bench-torch.py RNNKIT_TSV   (the output of build/.../bench_cuda)

Same model (Embedding(65, 128) -> LSTM/GRU(128, 512, 2 layers) -> Linear(512, 65)), same data
shapes, same step (mean cross-entropy, clip_grad_norm_ 5, Adam), same timing protocol (warm-up,
then the median of timed repetitions, each ended by a device synchronisation).
"""

import sys
import time

import torch

V, E, H, L, B, T, STEPS = 65, 128, 512, 2, 64, 100, 200


class Model(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        self.rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(E, H, L)
        self.dec = torch.nn.Linear(H, V)

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.emb(tokens), state)
        return self.dec(y), state


def time_ms(fn, warmup, reps, inner):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t) * 1e3 / inner)
    samples.sort()
    return samples[len(samples) // 2]


def train(cell):
    model = Model(cell).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, V, (T, B), device="cuda")
    targets = torch.randint(0, V, (T, B), device="cuda")

    def step():
        opt.zero_grad(set_to_none=False)
        logits, _ = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return T * B, time_ms(step, 3, 5, 10)


@torch.no_grad()
def generate(batch):
    model = Model("lstm").cuda().eval()
    start = torch.randint(0, V, (1, batch), device="cuda")

    def loop():
        tokens, state = start, None
        for _ in range(STEPS):
            logits, state = model(tokens, state)
            tokens = torch.multinomial(torch.softmax(logits[0], -1), 1).reshape(1, batch)

    return batch * STEPS, time_ms(loop, 1, 3, 1)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    if not torch.cuda.is_available():
        sys.exit("gpu-bench-torch: PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    rnnkit = {}
    with open(argv[1]) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) == 3:
                rnnkit[parts[0]] = float(parts[1])
    runs = {"train/M/lstm": lambda: train("lstm"), "train/M/gru": lambda: train("gru")}
    for batch in (1, 64, 256):
        runs[f"generate/M/lstm/b{batch}"] = lambda b=batch: generate(b)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    print(f"{'workload':<22} {'rnnkit tok/s':>14} {'torch tok/s':>14} {'ratio':>7}")
    for name, run in runs.items():
        tokens, ms = run()
        ref = tokens / (ms / 1e3)
        ours = rnnkit.get(name)
        shown = f"{ours:14.0f}" if ours is not None else f"{'-':>14}"
        ratio = f"{ours / ref:7.2f}" if ours is not None else f"{'-':>7}"
        print(f"{name:<22} {shown} {ref:14.0f} {ratio}")


if __name__ == "__main__":
    main(sys.argv)
