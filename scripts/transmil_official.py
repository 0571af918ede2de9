#!/usr/bin/python3
"""Runs the official TransMIL code (not part of this project) for the
by-hand checks of README "TransMIL and Nyströmformer": weights written by
her2wsi load into it, and a training step is timed on the same cores.

The official code is read from a folder given with --official that holds
models/TransMIL.py (szc19990412/TransMIL) and the nystrom_attention package
(lucidrains/nystrom-attention, which TransMIL imports), e.g. extracted from
snapshots into /tmp:

  mkdir -p /tmp/tmofficial/models /tmp/tmofficial/nystrom_attention
  git -C <TransMIL snapshot> show HEAD:models/TransMIL.py > /tmp/tmofficial/models/TransMIL.py
  git -C <nystrom-attention snapshot> show HEAD:nystrom_attention/__init__.py > /tmp/tmofficial/nystrom_attention/__init__.py
  git -C <nystrom-attention snapshot> show HEAD:nystrom_attention/nystrom_attention.py > /tmp/tmofficial/nystrom_attention/nystrom_attention.py

Debian has no einops; when it is missing, a minimal stand-in with the five
patterns nystrom_attention uses is installed in sys.modules. TransMIL's
.cuda() on the [CLS] token is made a no-op so it runs on the CPU.

  /usr/bin/python3 scripts/transmil_official.py check --official DIR \\
      --weights W --inputs I --out O [--variant transmil|nystromformer]
      Loads W (official state_dict names; in_dim from _fc1.0.weight) with
      load_state_dict(strict=True), runs eval mode (dropout off) on the
      "he" tensor of I and writes logits, loss (cross-entropy against
      I's "label") and every gradient to O. nystromformer: TransMIL with
      pos_layer replaced by the identity. With keep.layer1/keep.layer2 in I
      (dropout keep masks [T, 512] of the real tokens, 1 keep, 0 drop) also
      a train-mode step whose to_out Dropout (p 0.1) in each TransLayer
      uses those masks instead of drawing (the padded front rows, cut off
      after to_out, are kept): drop.logits, drop.loss, drop.grad.*.

  /usr/bin/python3 scripts/transmil_official.py bench --official DIR
      [--n 2048] [--in-dim 1024] [--steps 5] [--threads T] [--variant V]
      Times training steps (train mode as the official code trains:
      forward, cross-entropy, backward, Adam) and prints JSON.
"""

import argparse
import json
import os
import statistics
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipca_ref import read_safetensors, write_safetensors  # noqa: E402


def _einops_standin():
    """rearrange/reduce for exactly the patterns nystrom_attention 0.0.14
    uses."""
    m = types.ModuleType("einops")

    def rearrange(t, pattern, **kw):
        if pattern == "... i j -> ... j i":
            return t.transpose(-1, -2)
        if pattern == "i j -> () i j":
            return t.unsqueeze(0)
        if pattern == "b n (h d) -> b h n d":
            b, n, hd = t.shape
            return t.reshape(b, n, kw["h"], hd // kw["h"]).permute(0, 2, 1, 3)
        if pattern == "b h n d -> b n (h d)":
            b, h, n, d = t.shape
            return t.permute(0, 2, 1, 3).reshape(b, n, h * d)
        if pattern == "b n -> b () n":
            return t.unsqueeze(1)
        raise NotImplementedError(pattern)

    def reduce(t, pattern, op, **kw):
        if op != "sum":
            raise NotImplementedError(op)
        l = kw["l"]
        if pattern == "... (n l) d -> ... n d":
            return t.reshape(*t.shape[:-2], t.shape[-2] // l, l, t.shape[-1]).sum(-2)
        if pattern == "... (n l) -> ... n":
            return t.reshape(*t.shape[:-1], t.shape[-1] // l, l).sum(-1)
        raise NotImplementedError(pattern)

    m.rearrange, m.reduce = rearrange, reduce
    return m


def official(folder, variant, in_dim, classes):
    try:
        import einops  # noqa: F401
    except ImportError:
        sys.modules["einops"] = _einops_standin()
    sys.path.insert(0, folder)
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run
    from models.TransMIL import TransMIL
    model = TransMIL(n_classes=classes)
    if in_dim != 1024:  # her2wsi's in_dim is free; the official _fc1 takes 1024
        model._fc1[0] = torch.nn.Linear(in_dim, 512)
    if variant == "nystromformer":
        del model._modules["pos_layer"]
        object.__setattr__(model, "pos_layer", lambda x, H, W: x)
    return model


class GivenMask(torch.nn.Module):
    """Stands in for an nn.Dropout(p) on [1, L, D]: multiplies the last T
    rows by keep/(1-p) (the first L-T rows, the front padding the caller
    cuts off, pass unchanged)."""

    def __init__(self, keep, p):
        super().__init__()
        self.keep, self.p = keep, p

    def forward(self, x):
        T = self.keep.shape[0]
        m = torch.cat([torch.ones(x.shape[1] - T, x.shape[2]), self.keep * (1.0 / (1 - self.p))], 0)
        return x * m.unsqueeze(0)


def cmd_check(args):
    w, _ = read_safetensors(args.weights)
    in_dim, classes = w["_fc1.0.weight"].shape[1], w["_fc2.weight"].shape[0]
    model = official(args.official, args.variant, in_dim, classes)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in w.items()}, strict=True)
    model.eval()
    t, _ = read_safetensors(args.inputs)
    he = torch.from_numpy(np.ascontiguousarray(t["he"])).unsqueeze(0)
    logits = model(data=he)["logits"]
    loss = F.cross_entropy(logits, torch.tensor([int(t["label"][0])]))
    loss.backward()
    out = {"logits": logits[0].detach().numpy(), "loss": np.array([loss.item()], np.float32)}
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad.numpy().copy()
    if "keep.layer1" in t:
        model.train()
        for name in ("layer1", "layer2"):
            seq = getattr(model, name).attn.to_out
            if not isinstance(seq[1], torch.nn.Dropout):
                raise SystemExit(f"transmil_official: {name}.attn.to_out[1] is {seq[1]!r}, not the Dropout")
            keep = torch.from_numpy(np.ascontiguousarray(t["keep." + name]))
            seq[1] = GivenMask(keep, seq[1].p)
        model.zero_grad()
        logits = model(data=he)["logits"]
        loss = F.cross_entropy(logits, torch.tensor([int(t["label"][0])]))
        loss.backward()
        out["drop.logits"], out["drop.loss"] = logits[0].detach().numpy(), np.array([loss.item()], np.float32)
        for k, p in model.named_parameters():
            out["drop.grad." + k] = p.grad.numpy().copy()
    write_safetensors(args.out, out, {"format": "pt"})
    print(json.dumps({"logits": out["logits"].tolist(), "loss": loss.item(), "tensors": sum(k.startswith("grad.") for k in out),
                      "dropout_step": "drop.logits" in out}))


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = official(args.official, args.variant, args.in_dim, 4)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    he = torch.randn(1, args.n, args.in_dim)
    label = torch.tensor([1])

    def step():
        opt.zero_grad()
        F.cross_entropy(model(data=he)["logits"], label).backward()
        opt.step()

    step()
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"what": "official TransMIL", "variant": args.variant, "n": args.n, "in_dim": args.in_dim,
                      "threads": torch.get_num_threads(), "median_s": statistics.median(times), "times_s": times,
                      "cpu_s_median": statistics.median(cpu)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    for k in ("--official", "--weights", "--inputs", "--out"):
        c.add_argument(k, required=True)
    c.add_argument("--variant", default="transmil")
    b = sub.add_parser("bench")
    b.add_argument("--official", required=True)
    b.add_argument("--n", type=int, default=2048)
    b.add_argument("--in-dim", type=int, default=1024)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--variant", default="transmil")
    args = ap.parse_args()
    {"check": cmd_check, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
