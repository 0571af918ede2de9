#!/usr/bin/python3
"""Independent PyTorch reference of CLAM (clam_sb, clam_mb) for parity goldens.

The Go variants clam_sb and clam_mb (model/clam.go) are checked against this
file. It is written here from the semantics of mahmoodlab/CLAM
models/model_clam.py (CLAM_SB, CLAM_MB, Attn_Net, Attn_Net_Gated) and
utils/core_utils.py train_loop_clam (loss = bag_weight * CE(bag) +
(1 - bag_weight) * instance loss), with modules laid out so that
`state_dict()` has the official names (load_state_dict(strict=True) checks
them). Batch of one slide, the real patches only (no padding: the Go side pads
and must not depend on it).

Run it with Debian's Python, which has torch and numpy:

  /usr/bin/python3 scripts/clam_ref.py golden [--out model/testdata/parity/clam]
      Writes config_sb.json, config_mb.json, weights_<sb|mb>.safetensors and
      case_<a|b|c>.safetensors: inputs (he [N,in_dim], label), and per config
      out_<cfg>_logits, out_<cfg>_loss, out_<cfg>_attn (the attention the
      heatmap shows) and, for case a, grad_<cfg>.<state_dict name>.

  /usr/bin/python3 scripts/clam_ref.py grad --weights W --config C \\
      --inputs I1,I2 --out O1,O2
      Computes logits, loss, attention and every gradient of each case for
      weights W and writes them to O (the live check of weights written in Go).

  /usr/bin/python3 scripts/clam_ref.py official --repo DIR [--dir GOLDENS]
      Runs the official CLAM_SB/CLAM_MB from a checkout DIR of
      mahmoodlab/CLAM (models/model_clam.py, outside this repository) on the
      goldens in float64 and prints the largest differences to them.

  /usr/bin/python3 scripts/clam_ref.py bench [--repo DIR] [--n 2048] [--steps 5]
      Times training steps (forward with instance_eval, the weighted loss,
      backward, Adam) at N patches of in_dim 512, of the official model when
      --repo is given, else of this reference; prints JSON.

Everything is computed in float64 from the float32 weights and inputs and
stored as float32.
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipca_ref import read_safetensors, write_safetensors  # noqa: E402

SEED = 2024
SIZES = {"small": (512, 256), "big": (512, 384)}

# The golden configurations: official defaults (gated, small, k_sample 8,
# bag_weight 0.7, no subtyping) for SB; the other switches for MB.
CONFIGS = {
    "sb": {"variant": "clam_sb", "in_dim": 16, "classes": 4},
    "mb": {"variant": "clam_mb", "in_dim": 16, "classes": 4, "gate": False, "size_arg": "big",
           "k_sample": 4, "bag_weight": 0.5, "subtyping": True},
}
# name -> (patches, label); gradients are stored for "a" only.
CASES = {"a": (37, 2), "b": (200, 0), "c": (5, 3)}


def opts(cfg):
    """The config with the official defaults filled in."""
    return {
        "mb": cfg["variant"] == "clam_mb",
        "in_dim": cfg["in_dim"],
        "classes": cfg.get("classes", 4),
        "gate": cfg.get("gate", True),
        "size_arg": cfg.get("size_arg") or "small",
        "k_sample": cfg.get("k_sample") or 8,
        "bag_weight": cfg.get("bag_weight", 0.7),
        "subtyping": cfg.get("subtyping", False),
        "dropout": cfg.get("dropout", 0.0),
    }


class Gated(nn.Module):
    """tanh(a(h)) * sigmoid(b(h)) -> c: the gated attention."""

    def __init__(self, width, hidden, branches, dropout):
        super().__init__()
        a = [nn.Linear(width, hidden), nn.Tanh()]
        b = [nn.Linear(width, hidden), nn.Sigmoid()]
        if dropout:
            a.append(nn.Dropout(0.25))
            b.append(nn.Dropout(0.25))
        self.attention_a = nn.Sequential(*a)
        self.attention_b = nn.Sequential(*b)
        self.attention_c = nn.Linear(hidden, branches)

    def forward(self, h):
        return self.attention_c(self.attention_a(h) * self.attention_b(h))


class Plain(nn.Module):
    """Linear -> tanh -> (Dropout 0.25 when dropout is set) -> Linear."""

    def __init__(self, width, hidden, branches, dropout):
        super().__init__()
        layers = [nn.Linear(width, hidden), nn.Tanh()]
        if dropout:
            layers.append(nn.Dropout(0.25))
        layers.append(nn.Linear(hidden, branches))
        self.module = nn.Sequential(*layers)

    def forward(self, h):
        return self.module(h)


class CLAMRef(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        width, hidden = SIZES[o["size_arg"]]
        C = o["classes"]
        branches = C if o["mb"] else 1
        attn = (Gated if o["gate"] else Plain)(width, hidden, branches, o["dropout"])
        self.attention_net = nn.Sequential(nn.Linear(o["in_dim"], width), nn.ReLU(), nn.Dropout(o["dropout"]), attn)
        if o["mb"]:
            self.classifiers = nn.ModuleList([nn.Linear(width, 1) for _ in range(C)])
        else:
            self.classifiers = nn.Linear(width, C)
        self.instance_classifiers = nn.ModuleList([nn.Linear(width, 2) for _ in range(C)])

    def forward(self, x, label):
        """x [N, in_dim], label int -> logits [C], loss, shown attention [N]."""
        o = self.o
        C = o["classes"]
        net = self.attention_net
        h = net[2](net[1](net[0](x)))  # [N, width]
        A = torch.softmax(net[3](h).t(), dim=1)  # [branches, N]
        M = A @ h  # [branches, width]
        if o["mb"]:
            logits = torch.stack([self.classifiers[c](M[c])[0] for c in range(C)])
        else:
            logits = self.classifiers(M)[0]
        bag = F.cross_entropy(logits.unsqueeze(0), torch.tensor([label]))
        # Instance loss: per class, on its branch (SB: the only one).
        k = min(o["k_sample"], x.shape[0])
        inst = 0.0
        for c in range(C):
            a = A[c if o["mb"] else 0]
            top = torch.argsort(a, descending=True)[:k]
            bot = torch.argsort(a)[:k]
            clf = self.instance_classifiers[c]
            if c == label:
                lg = clf(torch.cat([h[top], h[bot]]))
                tg = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
                inst = inst + F.cross_entropy(lg, tg)
            elif o["subtyping"]:
                inst = inst + F.cross_entropy(clf(h[top]), torch.zeros(k, dtype=torch.long))
        if o["subtyping"]:
            inst = inst / C
        loss = o["bag_weight"] * bag + (1 - o["bag_weight"]) * inst
        shown = A[int(torch.argmax(logits))] if o["mb"] else A[0]
        return logits, loss, shown


def load_weights(model, path):
    w, _ = read_safetensors(path)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}, strict=True)


def run_case(model, he, label):
    model.zero_grad(set_to_none=True)
    logits, loss, shown = model(torch.from_numpy(he.astype(np.float64)), label)
    loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().numpy().astype(np.float32)
             for n, p in model.named_parameters()}
    f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return {"logits": f32(logits), "loss": f32(loss).reshape(1), "attn": f32(shown)}, grads


def cmd_golden(args):
    os.makedirs(args.out, exist_ok=True)
    models = {}
    for name, cfg in CONFIGS.items():
        torch.manual_seed(SEED + len(name) + ord(name[0]))
        m = CLAMRef(opts(cfg))
        with torch.no_grad():  # larger attention weights than the default init, so attention is peaked
            for n, p in m.named_parameters():
                if "attention_net.3" in n and n.endswith("weight"):
                    p.mul_(4)
        w = {n: p.detach().numpy().astype(np.float32) for n, p in m.state_dict().items()}
        write_safetensors(os.path.join(args.out, f"weights_{name}.safetensors"), w, {"format": "pt"})
        with open(os.path.join(args.out, f"config_{name}.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        m = m.double()
        load_weights(m, os.path.join(args.out, f"weights_{name}.safetensors"))
        models[name] = m
    rng = np.random.default_rng(SEED)
    for case, (n, label) in CASES.items():
        in_dim = CONFIGS["sb"]["in_dim"]
        he = rng.standard_normal((n, in_dim)).astype(np.float32)
        t = {"he": he, "label": np.array([label], dtype=np.int64)}
        for name, m in models.items():
            out, grads = run_case(m, he, label)
            for k, v in out.items():
                t[f"out_{name}_{k}"] = v
            if case == "a":
                for k, v in grads.items():
                    t[f"grad_{name}.{k}"] = v
            print(f"case {case} {name}: logits {out['logits']} loss {out['loss'][0]:.6f}")
        write_safetensors(os.path.join(args.out, f"case_{case}.safetensors"), t)


def cmd_grad(args):
    with open(args.config) as f:
        cfg = json.load(f)
    m = CLAMRef(opts(cfg)).double()
    load_weights(m, args.weights)
    ins, outs = args.inputs.split(","), args.out.split(",")
    if len(ins) != len(outs):
        sys.exit("clam_ref.py grad: --inputs and --out list different numbers of files")
    for i, o in zip(ins, outs):
        inp, _ = read_safetensors(i)
        out, grads = run_case(m, inp["he"], int(inp["label"][0]))
        t = {k: v for k, v in out.items()}
        for k, v in grads.items():
            t["grad." + k] = v
        write_safetensors(o, t)


def load_official(repo):
    path = os.path.join(repo, "models", "model_clam.py")
    spec = importlib.util.spec_from_file_location("official_model_clam", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def official_model(mod, o):
    cls = mod.CLAM_MB if o["mb"] else mod.CLAM_SB
    return cls(gate=o["gate"], size_arg=o["size_arg"], dropout=o["dropout"], k_sample=o["k_sample"],
               n_classes=o["classes"], subtyping=o["subtyping"], embed_dim=o["in_dim"])


def official_step(model, o, x, label):
    """One official training step's loss (train_loop_clam): logits, loss."""
    y = torch.tensor([label])
    logits, _, _, _, d = model(x, label=y, instance_eval=True)
    loss = o["bag_weight"] * F.cross_entropy(logits, y) + (1 - o["bag_weight"]) * d["instance_loss"]
    return logits[0], loss


def cmd_official(args):
    mod = load_official(args.repo)
    worst = {}
    for name, cfg in CONFIGS.items():
        o = opts(cfg)
        model = official_model(mod, o).double()
        model.eval()  # dropout 0 anyway; eval keeps it deterministic
        w, _ = read_safetensors(os.path.join(args.dir, f"weights_{name}.safetensors"))
        model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}, strict=True)
        for case in CASES:
            g, _ = read_safetensors(os.path.join(args.dir, f"case_{case}.safetensors"))
            x = torch.from_numpy(g["he"].astype(np.float64))
            label = int(g["label"][0])
            model.zero_grad(set_to_none=True)
            try:
                logits, loss = official_step(model, o, x, label)
            except RuntimeError as e:
                print(f"{name} case {case} (N={x.shape[0]}, k_sample={o['k_sample']}): official code fails: {str(e).splitlines()[0]}")
                continue
            loss.backward()
            d = {"logits": float(np.abs(logits.detach().numpy() - g[f"out_{name}_logits"]).max()),
                 "loss": float(abs(loss.item() - g[f"out_{name}_loss"][0]))}
            if case == "a":
                d["grad"] = max(float(np.abs((p.grad if p.grad is not None else torch.zeros_like(p)).numpy() - g[f"grad_{name}.{n}"]).max())
                                for n, p in model.named_parameters())
            print(f"{name} case {case}: official vs golden max |diff| {d}")
            for k, v in d.items():
                worst[k] = max(worst.get(k, 0.0), v)
    print(json.dumps({"worst": worst}))


def cmd_bench(args):
    torch.set_num_threads(args.threads or os.cpu_count())
    out = {"n": args.n, "in_dim": 512, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "code": "official" if args.repo else "reference"}
    mod = load_official(args.repo) if args.repo else None
    for variant in ("clam_sb", "clam_mb"):
        o = opts({"variant": variant, "in_dim": 512, "classes": 4})
        torch.manual_seed(SEED)
        model = official_model(mod, o) if mod else CLAMRef(o)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)  # CLAM's get_optim
        x = torch.from_numpy(np.random.default_rng(SEED).standard_normal((args.n, 512)).astype(np.float32))

        def step():
            opt.zero_grad(set_to_none=True)
            if mod:
                _, loss = official_step(model, o, x, 2)
            else:
                _, loss, _ = model(x, 2)
            loss.backward()
            opt.step()

        step()
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        out[variant + "_step_s_median"] = round(statistics.median(times), 5)
        out[variant + "_step_s_all"] = [round(t, 5) for t in times]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    here = os.path.dirname(os.path.abspath(__file__))
    goldens = os.path.normpath(os.path.join(here, "..", "model", "testdata", "parity", "clam"))
    g = sub.add_parser("golden")
    g.add_argument("--out", default=goldens)
    r = sub.add_parser("grad")
    r.add_argument("--weights", required=True)
    r.add_argument("--config", required=True)
    r.add_argument("--inputs", required=True, help="case files, comma-separated")
    r.add_argument("--out", required=True, help="output files, comma-separated, one per input")
    o = sub.add_parser("official")
    o.add_argument("--repo", required=True, help="a checkout of mahmoodlab/CLAM")
    o.add_argument("--dir", default=goldens)
    b = sub.add_parser("bench")
    b.add_argument("--repo", help="a checkout of mahmoodlab/CLAM: time the official model")
    b.add_argument("--n", type=int, default=2048)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    {"golden": cmd_golden, "grad": cmd_grad, "official": cmd_official, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
