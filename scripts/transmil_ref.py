#!/usr/bin/python3
"""Independent PyTorch reference of TransMIL and the Nyström-transformer MIL
(parity goldens for model/transmil.go).

Written from the semantics of szc19990412/TransMIL models/TransMIL.py and
lucidrains' nystrom_attention 0.0.14 (which TransMIL imports), batch of one,
in plain torch (no einops), with modules named so that state_dict() has the
official names (_fc1.0.*, cls_token, layer{1,2}.norm.*,
layer{1,2}.attn.to_qkv.weight, layer{1,2}.attn.to_out.0.*,
layer{1,2}.attn.res_conv.weight, pos_layer.proj{,1,2}.*, norm.*, _fc2.*):
load_state_dict(strict=True) checks them. Differences from the official
code, on purpose: in_dim is a parameter (official: 1024), dim, num_landmarks,
pinv_iterations, residual_conv_kernel and dropout are parameters (official:
512, dim/2, 6, 33, 0.1), no .cuda().

Dropout: the official code's only dropout is to_out = Sequential(Linear,
Dropout(0.1)) in each TransLayer's NystromAttention (train mode only). Here
to_out.1 is that nn.Dropout; given keep masks (1 keep, 0 drop; [T, D] per
layer, T the tokens after the front padding is cut), the layer multiplies
by keep/(1-p) instead of drawing, so the Go graph can be fed the same masks
(the official code drops the padded rows too and then cuts them off: the
same function). Goldens and the live check compare eval mode (no dropout)
and a training step with the given masks.

Run it with Debian's Python (torch 1.13, numpy):

  /usr/bin/python3 scripts/transmil_ref.py golden [--out model/testdata/parity_transmil]
      config.json, weights_<variant>.safetensors and case_<x>.safetensors
      (inputs, label, dropout keep masks keep.layer1/keep.layer2, and per
      variant: logits, loss, [CLS]→patch attention, and the gradient of the
      cross-entropy loss for every parameter without dropout; drop.logits,
      drop.loss and drop.grad.* with the keep masks at the config's rate).
      (`go test ./model -run TestTransMILParity -update` runs this.)

  /usr/bin/python3 scripts/transmil_ref.py grad --weights W --config C \\
      --inputs I --out O
      Logits, loss, attention and gradients of one input file for the
      weights W (written by the Go model) into O (the live check); with
      keep.layer1/keep.layer2 in I also drop.* as in the goldens.

  /usr/bin/python3 scripts/transmil_ref.py bench [--n 2048] [--in-dim 512]
      [--variant transmil] [--steps 5] [--threads T]
      Times training steps (forward, CE, backward, Adam) of this reference at
      the official size and prints JSON.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipca_ref import read_safetensors, write_safetensors  # noqa: E402

HEADS = 8
DROPOUT = 0.1  # TransLayer: NystromAttention(dropout=0.1)


def pinv_iter(x, iters):
    """Moore-Penrose iteration: z0 = x^T / (max over everything of the row
    sums of |x| times the max of the column sums), then
    z <- 1/4 z (13 I - xz (15 I - xz (7 I - xz)))."""
    a = x.abs()
    z = x.transpose(-1, -2) / (a.sum(-1).max() * a.sum(-2).max())
    eye = torch.eye(x.shape[-1], dtype=x.dtype).unsqueeze(0)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class Nystrom(nn.Module):
    def __init__(self, dim, landmarks, iters, kernel, dropout):
        super().__init__()
        self.dim, self.m, self.iters, self.p = dim, landmarks, iters, dropout
        self.dh = dim // HEADS
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.res_conv = nn.Conv2d(HEADS, HEADS, (kernel, 1), padding=(kernel // 2, 0), groups=HEADS, bias=False)

    def forward(self, x, keep=None):
        """x [T, D] -> ([T, D], [CLS] row of the approximate attention over
        the T-1 other tokens, mean over heads). keep: a given dropout keep
        mask [T, D] (None: to_out's nn.Dropout, active in train mode)."""
        T, D = x.shape
        m = self.m
        groups = -(-T // m)
        pad = groups * m - T
        xp = torch.cat([x.new_zeros(pad, D), x], 0)
        L = xp.shape[0]
        q, k, v = self.to_qkv(xp).chunk(3, dim=-1)
        q, k, v = (t.reshape(L, HEADS, self.dh).transpose(0, 1) for t in (q, k, v))  # [H, L, dh]
        q = q * self.dh ** -0.5
        ql = q.reshape(HEADS, m, groups, self.dh).sum(2) / groups
        kl = k.reshape(HEADS, m, groups, self.dh).sum(2) / groups
        a1 = torch.softmax(q @ kl.transpose(-1, -2), -1)
        a2 = torch.softmax(ql @ kl.transpose(-1, -2), -1)
        a3 = torch.softmax(ql @ k.transpose(-1, -2), -1)
        z = pinv_iter(a2, self.iters)
        out = (a1 @ z) @ (a3 @ v)
        out = out + self.res_conv(v.unsqueeze(0)).squeeze(0)
        out = self.to_out[0](out.transpose(0, 1).reshape(L, D))[pad:]
        if keep is None:
            out = self.to_out[1](out)
        else:
            out = out * (keep * (1.0 / (1 - self.p)))
        attn = ((a1[:, pad:pad + 1] @ z) @ a3).mean(0)[0, pad + 1:]
        return out, attn


class Layer(nn.Module):
    def __init__(self, dim, landmarks, iters, kernel, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Nystrom(dim, landmarks, iters, kernel, dropout)

    def forward(self, x, keep=None):
        out, attn = self.attn(self.norm(x), keep)
        return x + out, attn


class PosLayer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, side):
        D = x.shape[1]
        grid = x[1:].transpose(0, 1).reshape(1, D, side, side)
        y = self.proj(grid) + grid + self.proj1(grid) + self.proj2(grid)
        return torch.cat([x[:1], y.reshape(D, side * side).transpose(0, 1)], 0)


class TransMILRef(nn.Module):
    def __init__(self, cfg, ppeg):
        super().__init__()
        dim = cfg.get("dim") or 512
        landmarks = cfg.get("num_landmarks") or dim // 2
        iters = cfg.get("pinv_iterations") or 6
        kernel = cfg.get("residual_conv_kernel") or 33
        dropout = dropout_of(cfg)
        self.dim = dim
        self._fc1 = nn.Sequential(nn.Linear(cfg["in_dim"], dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = Layer(dim, landmarks, iters, kernel, dropout)
        if ppeg:
            self.pos_layer = PosLayer(dim)
        self.ppeg = ppeg
        self.layer2 = Layer(dim, landmarks, iters, kernel, dropout)
        self.norm = nn.LayerNorm(dim, eps=cfg.get("layer_norm_eps", 1e-5))
        self._fc2 = nn.Linear(dim, cfg["classes"])

    def forward(self, he, keeps=(None, None)):
        """he [N, in_dim] -> logits [classes], [CLS]->patch attention [N].
        keeps: the two layers' dropout keep masks [1 + side², D] (None:
        nn.Dropout)."""
        n = he.shape[0]
        h = self._fc1(he)
        side = math.ceil(math.sqrt(n))
        h = torch.cat([h, h[:side * side - n]], 0)
        x = torch.cat([self.cls_token[0], h], 0)
        x, _ = self.layer1(x, keeps[0])
        if self.ppeg:
            x = self.pos_layer(x, side)
        x, attn = self.layer2(x, keeps[1])
        logits = self._fc2(self.norm(x)[0])
        # A patch repeated by the square padding: the mean of its two slots.
        folded = attn[:n].clone()
        k = side * side - n
        folded[:k] = (folded[:k] + attn[n:]) / 2
        return logits, folded


def dropout_of(cfg):
    """The config's dropout; left out: the official 0.1 (as the Go config)."""
    p = cfg.get("dropout")
    return DROPOUT if p is None else p


def build(cfg, variant=None):
    """The reference in eval mode (no dropout unless masks are given)."""
    variant = variant or cfg["variant"]
    if variant not in ("transmil", "nystromformer"):
        raise SystemExit(f"transmil_ref: variant {variant!r} (transmil or nystromformer)")
    return TransMILRef(cfg, variant == "transmil").eval()


def load(model, path):
    t, _ = read_safetensors(path)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items()}, strict=True)


def outputs(model, he, label, keeps=None):
    """Logits, loss, attention and {name: grad} for one case; with keeps
    (the two layers' dropout keep masks) drop.logits, drop.loss and
    drop.grad.* of the training step with those masks."""
    model.zero_grad()
    logits, attn = model(he)
    loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([label]))
    loss.backward()
    out = {"logits": logits.detach().numpy().astype(np.float32),
           "loss": np.array([loss.item()], np.float32),
           "attn": attn.detach().numpy().astype(np.float32)}
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad.numpy().astype(np.float32).copy()
    if keeps is not None:
        model.zero_grad()
        logits, _ = model(he, keeps)
        loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([label]))
        loss.backward()
        out["drop.logits"] = logits.detach().numpy().astype(np.float32)
        out["drop.loss"] = np.array([loss.item()], np.float32)
        for k, p in model.named_parameters():
            out["drop.grad." + k] = p.grad.numpy().astype(np.float32).copy()
    return out


def draw_keeps(n, dim, p, generator):
    """Dropout keep masks (1 keep, 0 drop) for the two layers: [1 + side², dim]."""
    side = math.ceil(math.sqrt(n))
    return [(torch.rand(1 + side * side, dim, generator=generator) >= p).float() for _ in range(2)]


def cmd_golden(args):
    os.makedirs(args.out, exist_ok=True)
    cfg = {"variant": "transmil", "in_dim": 24, "classes": 4, "dim": 64}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    torch.manual_seed(17)
    models = {}
    for variant in ("transmil", "nystromformer"):
        m = build(cfg, variant)
        with torch.no_grad():  # spread the weights so every term matters
            for k, p in m.named_parameters():
                if k.endswith("bias"):
                    p.normal_(0, 0.1)
                elif "norm" in k:
                    p.normal_(1, 0.1)
                elif "res_conv" in k or "pos_layer" in k:
                    p.normal_(0, 0.2)
        models[variant] = m
        write_safetensors(os.path.join(args.out, f"weights_{variant}.safetensors"),
                          {k: v.numpy() for k, v in m.state_dict().items()}, {"format": "pt"})
    # n: a one-patch slide, a square, a non-square under one landmark group
    # count, and one spanning several landmark groups (T > 2 m).
    for name, n, label in (("a", 1, 2), ("b", 16, 0), ("c", 37, 3), ("d", 150, 1)):
        g = torch.Generator().manual_seed(1000 + n)
        he = torch.randn(n, cfg["in_dim"], generator=g)
        keeps = draw_keeps(n, cfg["dim"], dropout_of(cfg), g)
        tensors = {"he": he.numpy(), "label": np.array([label], np.int64),
                   "keep.layer1": keeps[0].numpy(), "keep.layer2": keeps[1].numpy()}
        worst = 0.0
        for variant, m in models.items():
            o = outputs(m, he, label, keeps)
            for k, v in o.items():
                tensors[f"{variant}.{k}"] = v
            o64 = outputs(m.double(), he.double(), label, [k.double() for k in keeps])
            m.float()
            for k in o:
                worst = max(worst, float(np.max(np.abs(o64[k] - o[k]))))
        write_safetensors(os.path.join(args.out, f"case_{name}.safetensors"), tensors, {"n": str(n)})
        print(f"case {name}: n={n}, float32 vs float64 max diff {worst:.2g}")


def cmd_grad(args):
    with open(args.config) as f:
        cfg = json.load(f)
    m = build(cfg)
    load(m, args.weights)
    t, _ = read_safetensors(args.inputs)
    he = torch.from_numpy(np.ascontiguousarray(t["he"]))
    keeps = None
    if "keep.layer1" in t:
        keeps = [torch.from_numpy(np.ascontiguousarray(t[k])) for k in ("keep.layer1", "keep.layer2")]
    o = outputs(m, he, int(t["label"][0]), keeps)
    write_safetensors(args.out, o, {"format": "pt"})


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = {"variant": args.variant, "in_dim": args.in_dim, "classes": 4}
    m = build(cfg).train()  # the official training step drops (to_out.1, p 0.1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    he = torch.randn(args.n, args.in_dim)
    label = torch.tensor([1])

    def step():
        opt.zero_grad()
        logits, _ = m(he)
        F.cross_entropy(logits.unsqueeze(0), label).backward()
        opt.step()

    step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"what": "transmil_ref.py", "variant": args.variant, "n": args.n, "in_dim": args.in_dim,
                      "threads": torch.get_num_threads(), "median_s": statistics.median(times), "times_s": times}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--out", default="model/testdata/parity_transmil")
    r = sub.add_parser("grad")
    for k in ("--weights", "--config", "--inputs", "--out"):
        r.add_argument(k, required=True)
    b = sub.add_parser("bench")
    b.add_argument("--n", type=int, default=2048)
    b.add_argument("--in-dim", type=int, default=512)
    b.add_argument("--variant", default="transmil")
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    {"golden": cmd_golden, "grad": cmd_grad, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
