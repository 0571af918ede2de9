#!/usr/bin/python3
"""Independent PyTorch reference of SlideGraph+ (parity goldens for the Go
variant `slidegraph`, model/slidegraph.go).

Written here from the semantics of TIAToolbox's SlideGraph notebook model
(SlideGraphArch) and torch_geometric's EdgeConv/GINConv and global pooling,
in plain torch (torch_geometric is not installed here): one graph per batch,
edge_index [2, E] with column (src j, dst i) meaning a message j -> i.
state_dict() has the official names: first_h.0/1, nns.k.0/1, convs.k.nn.0/1
(the same modules), convs.k.eps (GINConv), linears.l, BatchNorm buffers.

  /usr/bin/python3 scripts/slidegraph_ref.py golden [--out model/testdata/parity/slidegraph]
      config.json, weights.safetensors and case_<a|b|c>.safetensors: inputs
      (x [V,in] F32, edge_index [2,E] I64, label I64) and outputs: eval
      logits, train-mode logits, CE loss gradients (grad.<name>) and the
      BatchNorm batch statistics (stat.<module>.mean / .var, unbiased).

  /usr/bin/python3 scripts/slidegraph_ref.py check --weights W --config C --inputs I
      Loads W (written by the Go model) with load_state_dict(strict=True)
      and prints the same outputs as JSON.

  /usr/bin/python3 scripts/slidegraph_ref.py bench [--nodes V] [--steps 5]
      Times training steps (forward, CE, backward, Adam) at V nodes.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


# ---- safetensors (minimal, F32/I64) ----
def st_write(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        dt = {np.float32: "F32", np.int64: "I64"}[a.dtype.type]
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "I64": np.int64}[e["dtype"]]
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(e["shape"]).copy()
    return out


# ---- the model ----
def mlp(i, o):
    return nn.Sequential(nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU())


class EdgeConvRef(nn.Module):
    """torch_geometric EdgeConv: out_i = aggr_j nn(cat[x_i, x_j - x_i])."""

    def __init__(self, net, aggr="max"):
        super().__init__()
        self.nn, self.aggr = net, aggr

    def forward(self, x, ei):
        src, dst = ei[0], ei[1]
        msg = self.nn(torch.cat([x[dst], x[src] - x[dst]], dim=-1))
        out = torch.zeros(x.shape[0], msg.shape[1], dtype=x.dtype)
        idx = dst[:, None].expand_as(msg)
        if self.aggr == "max":
            # scatter max with 0 for nodes without messages (PyG's default)
            out = out.scatter_reduce(0, idx, msg, reduce="amax", include_self=False)
        elif self.aggr == "add":
            out = out.scatter_add(0, idx, msg)
        else:
            out = out.scatter_add(0, idx, msg)
            deg = torch.zeros(x.shape[0], dtype=x.dtype).scatter_add(0, dst, torch.ones_like(dst, dtype=x.dtype))
            out = out / deg.clamp(min=1)[:, None]
        return out


class GINConvRef(nn.Module):
    """torch_geometric GINConv(train_eps=False): nn((1+eps) x_i + sum_j x_j)."""

    def __init__(self, net):
        super().__init__()
        self.nn = net
        self.register_buffer("eps", torch.zeros(1))

    def forward(self, x, ei):
        agg = torch.zeros_like(x).index_add(0, ei[1], x[ei[0]])
        return self.nn((1 + self.eps) * x + agg)


class SlideGraphRef(nn.Module):
    def __init__(self, dim_features, dim_target, layers=(16, 16, 8), pooling="max", dropout=0.0, conv="GINConv", gembed=False, aggr="max"):
        super().__init__()
        self.dropout, self.layers, self.gembed, self.pooling = dropout, list(layers), gembed, pooling
        alpha = 2 if conv == "EdgeConv" else 1
        self.first_h = mlp(dim_features, layers[0])
        nns, convs, lins = [], [], [nn.Linear(layers[0], dim_target)]
        for i, o in zip(layers[:-1], layers[1:]):
            sub = mlp(alpha * i, o)
            nns.append(sub)
            convs.append(EdgeConvRef(sub, aggr) if conv == "EdgeConv" else GINConvRef(sub))
            lins.append(nn.Linear(o, dim_target))
        self.nns, self.convs, self.linears = nn.ModuleList(nns), nn.ModuleList(convs), nn.ModuleList(lins)

    def pool(self, t):
        return {"max": lambda: t.max(0, keepdim=True)[0], "mean": lambda: t.mean(0, keepdim=True), "add": lambda: t.sum(0, keepdim=True)}[self.pooling]()

    def forward(self, x, ei):
        wsi, node = 0, 0
        h = self.first_h(x)
        for layer in range(len(self.layers)):
            if layer > 0:
                h = self.convs[layer - 1](h, ei)
            if layer == 0 or not self.gembed:
                sub = self.linears[layer](h)
                node = node + sub
                wsi = wsi + F.dropout(self.pool(sub), p=self.dropout, training=self.training)
            else:
                wsi = wsi + F.dropout(self.linears[layer](self.pool(h)), p=self.dropout, training=self.training)
        return wsi, node


def build(cfg):
    return SlideGraphRef(cfg["in_dim"], cfg["classes"], cfg.get("layers") or [16, 16, 8], cfg.get("pooling") or "mean", 0.0,
                         cfg.get("conv") or "EdgeConv", cfg.get("gembed", False), cfg.get("aggr") or "max")


def bn_modules(m):
    return [("first_h.1", m.first_h[1])] + [("nns.%d.1" % k, s[1]) for k, s in enumerate(m.nns)]


def outputs(m, x, ei, label):
    """Eval logits; train-mode logits, CE gradients and BN batch stats."""
    import copy
    saved = copy.deepcopy(m.state_dict())  # train mode moves the running statistics
    m.eval()
    with torch.no_grad():
        ev, _ = m(x, ei)
    stats = {}
    hooks = []
    for name, bn in bn_modules(m):
        def hook(mod, inp, _out, name=name):
            t = inp[0].detach()
            stats["stat.%s.mean" % name] = t.mean(0)
            stats["stat.%s.var" % name] = t.var(0, unbiased=True)
        hooks.append(bn.register_forward_hook(hook))
    m.train()
    m.zero_grad()
    tr, _ = m(x, ei)
    loss = F.cross_entropy(tr, torch.tensor([label]))
    loss.backward()
    for h in hooks:
        h.remove()
    m.load_state_dict(saved)
    out = {"out_eval_logits": ev[0], "out_train_logits": tr[0].detach(), "loss": loss.detach().reshape(1)}
    for n, p in m.named_parameters():
        if n.startswith("convs."):
            continue  # the same tensors as nns.*
        out["grad." + n] = p.grad
    out.update(stats)
    return {k: v.detach().numpy().astype(np.float32) for k, v in out.items()}


def rand_graph(rng, v, e_per):
    pos = rng.random((v, 2))
    pairs = set()
    for i in range(v):
        d = ((pos - pos[i]) ** 2).sum(1)
        for j in np.argsort(d)[1:1 + e_per]:
            pairs.add((int(j), i))
            pairs.add((i, int(j)))
    ei = np.array(sorted(pairs), dtype=np.int64).T if pairs else np.zeros((2, 0), np.int64)
    return ei


def golden(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(17)
    rng = np.random.default_rng(17)
    cfgs = {
        "": {"variant": "slidegraph", "in_dim": 24, "classes": 4, "layers": [16, 16, 8], "pooling": "mean", "conv": "EdgeConv", "aggr": "max"},
        "gin": {"variant": "slidegraph", "in_dim": 24, "classes": 4, "layers": [12, 10], "pooling": "max", "conv": "GINConv"},
    }
    for tag, cfg in cfgs.items():
        m = build(cfg)
        with torch.no_grad():  # non-trivial BN state and eps
            for _, bn in bn_modules(m):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.3, 0.3)
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
            for c in m.convs:
                if hasattr(c, "eps") and isinstance(c, GINConvRef):
                    c.eps.fill_(0.25)
        sfx = "_" + tag if tag else ""
        with open(os.path.join(out, "config%s.json" % sfx), "w") as f:
            json.dump(cfg, f, indent=1)
        st_write(os.path.join(out, "weights%s.safetensors" % sfx), {k: v.numpy() for k, v in m.state_dict().items()}, {"format": "pt"})
        for name, (v, e_per) in {"a": (7, 3), "b": (33, 4), "c": (5, 1)}.items():
            x = torch.from_numpy(rng.standard_normal((v, cfg["in_dim"])).astype(np.float32))
            ei = torch.from_numpy(rand_graph(rng, v, e_per))
            label = int(rng.integers(cfg["classes"]))
            o = outputs(m, x, ei, label)
            o["x"], o["edge_index"], o["label"] = x.numpy(), ei.numpy(), np.array([label], np.int64)
            st_write(os.path.join(out, "case%s_%s.safetensors" % (sfx, name)), o)
    print("goldens written to", out)


def check(a):
    cfg = json.load(open(a.config))
    m = build(cfg)
    w = {k: torch.from_numpy(v) for k, v in st_read(a.weights).items()}
    m.load_state_dict(w, strict=True)
    inp = st_read(a.inputs)
    o = outputs(m, torch.from_numpy(inp["x"]), torch.from_numpy(inp["edge_index"]), int(inp["label"][0]))
    json.dump({k: v.reshape(-1).tolist() for k, v in o.items()}, sys.stdout)


def bench(a):
    torch.set_num_threads(a.threads or torch.get_num_threads())
    rng = np.random.default_rng(1)
    cfg = {"in_dim": 512, "classes": 4}
    m = build(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.from_numpy(rng.standard_normal((a.nodes, 512)).astype(np.float32))
    ei = torch.from_numpy(rand_graph(rng, a.nodes, 6))
    times = []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        m.train()
        opt.zero_grad()
        out, _ = m(x, ei)
        F.cross_entropy(out, torch.tensor([1])).backward()
        opt.step()
        if s:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"nodes": a.nodes, "edges": int(ei.shape[1]), "threads": torch.get_num_threads(), "step_s": float(np.median(times))}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    g = sp.add_parser("golden")
    g.add_argument("--out", default="model/testdata/parity/slidegraph")
    c = sp.add_parser("check")
    c.add_argument("--weights", required=True)
    c.add_argument("--config", required=True)
    c.add_argument("--inputs", required=True)
    b = sp.add_parser("bench")
    b.add_argument("--nodes", type=int, default=512)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    {"golden": lambda: golden(a.out), "check": lambda: check(a), "bench": lambda: bench(a)}[a.cmd]()
