#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that test/pytorch-parity.test.ts checks rnnkit against.

Run with Debian's python3 (which has torch): `npm run fixtures`. Needs torch only: safetensors
files are written by hand (struct + json), since the `safetensors` package is not installed.

For every case (nn.RNN tanh/relu, nn.LSTM, nn.GRU; 1 and 2 layers; a padded batch through
pack_padded_sequence) one file test/fixtures/torch-<case>.safetensors holds
  weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}   the module's state dict
  x [T,B,I], h0 [L,B,H] (c0)                                    inputs
  y [T,B,H], hT [L,B,H] (cT)                                    outputs
  gy, ghT (gcT)                                                 upstream gradients (random)
  grad.x, grad.h0 (grad.c0), grad.<weight name>                 d(loss)/d(...) for
      loss = sum(y * gy) + sum(hT * ghT) (+ sum(cT * gcT))
  lengths [B] (I32, padded cases only)                          valid steps of each row
with the case's sizes in the metadata. The reference is computed in float64 from float32 weights
and inputs (so it is exact up to the float32 rounding of what is stored).

The LM fixture is test/fixtures/torch-lm.safetensors, the state dict of TinyLM below (embedding,
rnn = 2-layer LSTM, decoder), and test/fixtures/torch-lm-expected.safetensors with token ids
[T,B] (I32) and the logits [T,B,V] TinyLM gives for them.
"""

import json
import os
import struct
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures")

I, H, T, B = 5, 7, 6, 3
VOCAB, EMBED = 11, 6
PADDED_LENGTHS = [4, 6, 1]  # unsorted on purpose: rnnkit does not need sorted rows

DTYPES = {torch.float32: ("F32", "<f4"), torch.int32: ("I32", "<i4")}


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as safetensors: u64 LE header length, JSON header, raw LE data."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in DTYPES:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        dtype, layout = DTYPES[t.dtype]
        data = t.numpy().astype(layout).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)
    return os.path.getsize(path)


def make_module(kind, nonlinearity, layers):
    if kind == "rnn":
        return nn.RNN(I, H, num_layers=layers, nonlinearity=nonlinearity)
    if kind == "lstm":
        return nn.LSTM(I, H, num_layers=layers)
    return nn.GRU(I, H, num_layers=layers)


def recurrent_case(name, kind, nonlinearity, layers, seed, lengths=None):
    torch.manual_seed(seed)
    module = make_module(kind, nonlinearity, layers)
    weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
    is_lstm = kind == "lstm"
    x = torch.randn(T, B, I)
    h0 = torch.randn(layers, B, H) * 0.5
    c0 = torch.randn(layers, B, H) * 0.5 if is_lstm else None
    gy = torch.randn(T, B, H)
    ghT = torch.randn(layers, B, H)
    gcT = torch.randn(layers, B, H) if is_lstm else None

    # The reference runs in float64 on exactly the float32 values stored.
    ref = module.double()
    xd = x.double().requires_grad_()
    h0d = h0.double().requires_grad_()
    c0d = c0.double().requires_grad_() if is_lstm else None
    state = (h0d, c0d) if is_lstm else h0d
    if lengths is None:
        yd, final = ref(xd, state)
    else:
        packed = pack_padded_sequence(xd, torch.tensor(lengths), enforce_sorted=False)
        out, final = ref(packed, state)
        yd, _ = pad_packed_sequence(out, total_length=T)
    hTd, cTd = final if is_lstm else (final, None)
    loss = (yd * gy.double()).sum() + (hTd * ghT.double()).sum()
    if is_lstm:
        loss = loss + (cTd * gcT.double()).sum()
    loss.backward()

    f = torch.float32
    tensors = dict(weights)
    tensors.update(x=x, h0=h0, y=yd.to(f), hT=hTd.to(f), gy=gy, ghT=ghT)
    tensors["grad.x"] = xd.grad.to(f)
    tensors["grad.h0"] = h0d.grad.to(f)
    if is_lstm:
        tensors.update(c0=c0, cT=cTd.to(f), gcT=gcT)
        tensors["grad.c0"] = c0d.grad.to(f)
    for pname, p in ref.named_parameters():
        tensors[f"grad.{pname}"] = p.grad.to(f)
    if lengths is not None:
        tensors["lengths"] = torch.tensor(lengths, dtype=torch.int32)
    metadata = {
        "cell": kind,
        "nonlinearity": nonlinearity,
        "input_size": I,
        "hidden_size": H,
        "num_layers": layers,
        "steps": T,
        "batch": B,
        "torch": torch.__version__,
    }
    path = os.path.join(OUT, f"torch-{name}.safetensors")
    return path, write_safetensors(path, tensors, metadata), len(tensors)


class TinyLM(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear: the module rnnkit's LanguageModel mirrors."""

    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, ids):
        out, _ = self.rnn(self.embedding(ids))
        return self.decoder(out)


def lm_case(seed):
    torch.manual_seed(seed)
    model = TinyLM(VOCAB, EMBED, H, 2)
    ids = torch.randint(0, VOCAB, (T, B))
    with torch.no_grad():
        logits = model.double()(ids).float()
    model = model.float()
    config = {
        "vocabSize": VOCAB,
        "embeddingSize": EMBED,
        "hiddenSize": H,
        "numLayers": 2,
        "cell": "lstm",
    }
    written = []
    path = os.path.join(OUT, "torch-lm.safetensors")
    state = model.state_dict()
    written.append((path, write_safetensors(path, state, {"format": "pt"}), len(state)))
    path = os.path.join(OUT, "torch-lm-expected.safetensors")
    expected = {"ids": ids.to(torch.int32), "logits": logits}
    meta = {"config": json.dumps(config), "torch": torch.__version__}
    written.append((path, write_safetensors(path, expected, meta), len(expected)))
    return written


CASES = [
    # name, cell, nonlinearity, layers, seed, lengths
    ("rnn-tanh-l1", "rnn", "tanh", 1, 101, None),
    ("rnn-tanh-l2", "rnn", "tanh", 2, 102, None),
    ("rnn-relu-l1", "rnn", "relu", 1, 103, None),
    ("rnn-relu-l2", "rnn", "relu", 2, 104, None),
    ("lstm-l1", "lstm", "tanh", 1, 105, None),
    ("lstm-l2", "lstm", "tanh", 2, 106, None),
    ("gru-l1", "gru", "tanh", 1, 107, None),
    ("gru-l2", "gru", "tanh", 2, 108, None),
    ("rnn-tanh-l2-padded", "rnn", "tanh", 2, 109, PADDED_LENGTHS),
    ("rnn-relu-l2-padded", "rnn", "relu", 2, 110, PADDED_LENGTHS),
    ("lstm-l2-padded", "lstm", "tanh", 2, 111, PADDED_LENGTHS),
    ("gru-l2-padded", "gru", "tanh", 2, 112, PADDED_LENGTHS),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    written = [recurrent_case(*case) for case in CASES]
    written += lm_case(113)
    total = 0
    for path, size, count in written:
        total += size
        print(f"wrote {os.path.relpath(path, ROOT)}  ({count} tensors, {size} bytes)")
    print(f"{len(written)} files, {total} bytes in all (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
