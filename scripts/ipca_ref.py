#!/usr/bin/python3
"""Independent PyTorch reference of the IPCA forward pass (parity goldens).

The Go model (package model, GoMLX) is checked against this file. It is a
from-scratch implementation of the forward pass specified for the parity
tests (DESIGN.md "The IPCA model", paper §2), batch of one, with the weights
in the reference PyTorch state_dict names, so `state_dict()` of the modules
below has exactly the reference names (load_state_dict(strict=True) checks
them).

Run it with Debian's Python, which has torch and numpy
(apt-get install python3-torch python3-numpy):

  /usr/bin/python3 scripts/ipca_ref.py golden [--out model/testdata/parity]
      Writes config.json, weights.safetensors, weights_pama.safetensors and
      case_<a|b|c|d>.safetensors (inputs and expected logits).

  /usr/bin/python3 scripts/ipca_ref.py forward --weights W --config C \\
      --inputs I [--he-only] [--float64] [--variant V]
      Prints the logits of one input file as JSON (check a Go-trained model
      in torch).

  /usr/bin/python3 scripts/ipca_ref.py bench [--threads T] [--steps 5]
      Times full training steps (forward, CE(H&E)+CE(IHC), backward, Adam)
      of the default-size model on the CPU and prints JSON.

Input tensors of one case (safetensors):
  he [N,in_dim] F32, he_mask [N] F32 (1 real patch, 0 padding),
  dist [K,N] I64 distance bin anchor→patch (0..65), polar [K,N] I64 polar
  sector (0..7), anchor_mask [K] F32, ihc [M,in_dim] F32, ihc_mask [M] F32.
  Padded entries of dist/polar are 0. All K anchor slots are kept, in order
  (no kernel masking here).

Golden outputs (F32 [classes] each) in every case file:
  out_train_logits, out_train_logits_ihc  variant ipca, H&E + IHC, default mode
  out_he_logits                           variant ipca, H&E only, default mode
  out_noproxy_logits                      variant ipca-noproxy, H&E, default mode
  out_pama_logits                         variant pama (weights_pama), default
  ref_train_logits, ref_train_logits_ihc  ipca, reference_padding and
  ref_he_logits                           reference_eval both true

The goldens are computed in float32 (as the reference PyTorch code and the Go
model compute), from the float32 weights; a float64 run of the same
computation is compared against it and the differences are printed. float32
matters in one place: rows whose every entry is masked (a padded patch's
row of the patch←anchor attention) get softmax of (-1e9 + bias), which in
float32 is exactly uniform because -1e9 + b rounds to -1e9; in float64 the
bias survives. Such rows never reach the outputs in the default mode, but in
reference_padding mode they do (through the main orientation of the next
block, which sums |logits| over padded columns too).
"""

import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Variants.
IPCA = "ipca"
NOPROXY = "ipca-noproxy"
PAMA = "pama"
VARIANTS = (IPCA, NOPROXY, PAMA)

DIST_BINS = 66  # dis_embed rows (bins 0..64 used, one spare)
POLAR_BINS = 8  # polar sectors
LN_EPS = 1e-5  # PyTorch nn.LayerNorm default
FILL_KX = -1e6  # masked anchor←patch logits (the reference's value)
FILL = -1e9  # every other masked logit

SEED = 2024

# The tiny configuration of the parity goldens.
GOLDEN_CONFIG = {
    "variant": IPCA,
    "in_dim": 24,
    "e_dim": 32,
    "depth": 2,
    "heads": 4,
    "mlp_ratio": 4.0,
    "num_prompts": 8,
    "max_anchors": 6,
    "max_patches": 40,
    "max_ihc_patches": 30,
    "classes": 4,
    "mask_ratio": 0.0,
    "dropout": 0.0,
    "layer_norm_eps": LN_EPS,
    "reference_padding": False,
    "reference_eval": False,
}

# The default-size model of the benchmark.
BENCH_CONFIG = dict(
    GOLDEN_CONFIG,
    in_dim=512, e_dim=256, depth=2, heads=8, mlp_ratio=4.0, num_prompts=256,
    max_anchors=128, max_patches=2048, max_ihc_patches=2048,
)

# name -> (real patches N, real anchors K, real IHC patches M); padded shapes
# are N=40, K=6, M=30 for every case.
CASES = {
    "a": (40, 6, 30),  # nothing padded
    "b": (25, 4, 17),  # everything padded
    "c": (40, 2, 30),  # only anchors padded
    "d": (7, 1, 5),  # mostly padding
}

# A golden is only kept if, in every block, head and anchor row that reaches
# the outputs, the largest orientation score beats the second largest by
# this relative margin, so an implementation that sums in another order (or
# a GPU matmul with reduced precision) picks the same main orientation.
MIN_ORIENT_MARGIN = 2e-3


# ---------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header
# {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the
# raw little-endian data.

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns ({name: numpy array (native byte order)}, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", buf[:8])
    if 8 + hlen > len(buf):
        raise ValueError(f"{path}: header length {hlen} past the end")
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        dt = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        start, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - start != count * dt.itemsize or base + end > len(buf):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {start}..{end}")
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=base + start)
        out[name] = arr.reshape(shape).astype(dt.newbyteorder("="))
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors sorted by name, offsets contiguous, "__metadata__"
    first, compact JSON padded with spaces to a multiple of 8 bytes; the file
    is written to a temporary name and renamed."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        code = _CODES.get(a.dtype)
        if code is None:
            raise ValueError(f"tensor {name}: dtype {a.dtype} not supported")
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# The model. Tensors carry no batch axis (batch of one): patches [n, D],
# heads [H, n, hd].


def split_heads3(t, heads):
    """[n, 3D] (the q, k, v chunks side by side) -> q, k, v each [H, n, hd];
    head h of each chunk is its columns h*hd..(h+1)*hd-1."""
    n, three_d = t.shape
    hd = three_d // 3 // heads
    t = t.reshape(n, 3, heads, hd).permute(1, 2, 0, 3)
    return t[0], t[1], t[2]


def merge_heads(t):
    """[H, n, hd] -> [n, H*hd] (inverse of the head split)."""
    h, n, hd = t.shape
    return t.permute(1, 0, 2).reshape(n, h * hd)


def attend(logits, values):
    """softmax over the last axis, then the weighted sum of values."""
    return torch.softmax(logits, dim=-1) @ values


class Mlp(nn.Module):
    """fc2(gelu(fc1(x))), exact (erf) GELU."""

    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Geometry:
    """Per-slide quantities shared by every block (built once from the
    inputs by IPCAModel.geometry)."""

    def __init__(self, rd, pol, keep_kx, orient_cols, x_real, ihc_real, probe):
        self.rd = rd  # [K, N+1] distance bins, column 0 the [CLS] column
        self.pol = pol  # [K, N+1] polar sectors, column 0 the [CLS] column
        self.keep_kx = keep_kx  # [K, N+1] bool: anchor a may see x-token j
        self.orient_cols = orient_cols  # [N+1] bool: columns of the orientation score
        self.x_real = x_real  # [N+1] bool: [CLS] and real patches
        self.ihc_real = ihc_real  # [M+1] bool or None
        self.probe = probe  # None or a list that collects orientation margins


class Attention(nn.Module):
    def __init__(self, d, heads, variant):
        super().__init__()
        self.heads = heads
        self.scale = (d // heads) ** -0.5
        self.qkv = nn.Linear(d, 3 * d)  # shared by patches and anchors
        self.proj = nn.Linear(d, d)  # shared by both H&E attention results
        if variant in (IPCA, NOPROXY):
            self.qkv_i = nn.Linear(d, 3 * d)  # prompts (and IHC patches)
        if variant == IPCA:
            self.qkv_i2 = nn.Linear(d, 3 * d)  # IHC←prompt keys/values
            self.proj_i = nn.Linear(d, d)
            self.proj_i2 = nn.Linear(d, d)
        self.dis_embed = nn.Embedding(DIST_BINS, heads)  # φd, one value per head
        self.polar_emb = nn.Embedding(POLAR_BINS, 1)  # φp, shared by the heads

    def forward(self, xn, kn, pn, ixn, geo):
        """xn [N+1,D], kn [K,D] (normalised), pn [P,D] normalised prompts or
        None (no prompt path), ixn [M+1,D] normalised IHC tokens or None (no
        IHC branch). Returns x_out, k_out, i_out (None without IHC)."""
        H, scale = self.heads, self.scale

        # Step 2: projections. One qkv for patches and anchors.
        q, k, v = split_heads3(self.qkv(xn), H)  # [H, N+1, hd]
        kq, kk, kv = split_heads3(self.qkv(kn), H)  # [H, K, hd]

        # Step 3: anchor←patch logits L [H, K, N+1].
        L = (kq @ k.transpose(-1, -2)) * scale

        # Main orientation per (head, anchor): the sector whose columns have
        # the largest Σ|L| (columns: all, or [CLS] + real patches), first
        # sector on ties. No gradient flows through the argmax.
        with torch.no_grad():
            w = L.abs() * geo.orient_cols.to(L.dtype)
            pol = geo.pol.unsqueeze(0).expand(H, -1, -1)
            S = torch.zeros(L.shape[0], L.shape[1], POLAR_BINS, dtype=L.dtype)
            S.scatter_add_(2, pol, w)  # [H, K, 8]
            smax = S.max(dim=-1, keepdim=True).values
            sector = torch.arange(POLAR_BINS).expand_as(S)
            main = torch.where(S == smax, sector, torch.full_like(sector, POLAR_BINS)).min(dim=-1).values
            if geo.probe is not None:
                top2 = S.topk(2, dim=-1).values
                margin = (top2[..., 0] - top2[..., 1]) / top2[..., 0].clamp_min(1e-30)
                geo.probe.append(margin)  # [H, K]

        # Polar sectors re-oriented per head and anchor, then the bias
        # B[h,a,j] = φd(rd[a,j])[h] + φp((pol[a,j] - main[h,a]) mod 8).
        pol_rot = torch.remainder(pol - main.unsqueeze(-1), POLAR_BINS)  # [H, K, N+1]
        B = self.dis_embed.weight[geo.rd].permute(2, 0, 1) + self.polar_emb.weight[:, 0][pol_rot]

        # Anchor←patch attention (eq. 1): masked logits replaced by -1e6,
        # then the bias added; k_out = proj(merge(A·v)) [K, D].
        A_logits = L.masked_fill(~geo.keep_kx, FILL_KX) + B
        k_out = self.proj(merge_heads(attend(A_logits, v)))

        # Step 4: patch←anchor attention (eq. 3), the transposed mask and
        # bias, masked logits -1e9.
        Lx = (q @ kk.transpose(-1, -2)) * scale  # [H, N+1, K]
        Ax_logits = Lx.masked_fill(~geo.keep_kx.t(), FILL) + B.transpose(-1, -2)
        x_out = self.proj(merge_heads(attend(Ax_logits, kv)))

        # Prompt projections (queries for the IHC branch, keys/values for
        # the patch←prompt path).
        if pn is not None:
            pq, pk, pv = split_heads3(self.qkv_i(pn), H)  # [H, P, hd]

        # Patch←prompt attention (eq. 6): rows of padded patches masked
        # (the [CLS] row never); proj applied to this term on its own, so
        # its bias counts twice (eq. 7: x_out = x_out1 + x_out2).
        if pn is not None:
            Lp = (q @ pk.transpose(-1, -2)) * scale  # [H, N+1, P]
            Lp = Lp.masked_fill(~geo.x_real.unsqueeze(-1), FILL)
            x_out = x_out + self.proj(merge_heads(attend(Lp, pv)))

        # Step 5: IHC branch (training only).
        i_out = None
        if ixn is not None:
            iq, ik, iv = split_heads3(self.qkv_i(ixn), H)  # [H, M+1, hd]
            # Prompts attend to the IHC tokens (eq. 4); padded IHC columns masked.
            Lpi = (pq @ ik.transpose(-1, -2)) * scale  # [H, P, M+1]
            Lpi = Lpi.masked_fill(~geo.ihc_real.unsqueeze(0), FILL)
            p_out = self.proj_i(merge_heads(attend(Lpi, iv)))  # [P, D]
            # IHC tokens attend to that result (eq. 5); the query chunk of
            # qkv_i2 is unused. Padded IHC rows masked.
            _, k2, v2 = split_heads3(self.qkv_i2(p_out), H)  # [H, P, hd]
            Li = (iq @ k2.transpose(-1, -2)) * scale  # [H, M+1, P]
            Li = Li.masked_fill(~geo.ihc_real.unsqueeze(-1), FILL)
            i_out = self.proj_i2(merge_heads(attend(Li, v2)))  # [M+1, D]
        return x_out, k_out, i_out


class Block(nn.Module):
    def __init__(self, d, heads, mlp_ratio, prompts, variant):
        super().__init__()
        hidden = int(d * mlp_ratio)
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        if variant in (IPCA, NOPROXY):
            self.norm1_i = nn.LayerNorm(d, eps=LN_EPS)
            self.kernel_token_i = nn.Parameter(torch.zeros(1, prompts, d))  # learned IHC prompts
        if variant == IPCA:
            self.norm2_i = nn.LayerNorm(d, eps=LN_EPS)
            self.mlp_i = Mlp(d, hidden)
        self.attn = Attention(d, heads, variant)
        self.mlp = Mlp(d, hidden)  # shared by patches and anchors

    def forward(self, x, kx, ix, geo, use_prompts):
        # Step 1: pre-norm (patches and anchors share norm1; IHC tokens and
        # prompts share norm1_i).
        xn, kn = self.norm1(x), self.norm1(kx)
        pn = self.norm1_i(self.kernel_token_i[0]) if use_prompts else None
        ixn = self.norm1_i(ix) if ix is not None else None
        # Steps 2-5.
        x_out, k_out, i_out = self.attn(xn, kn, pn, ixn, geo)
        # Step 6: residuals on the normalised tokens, then the MLPs.
        x = xn + x_out
        kx = kn + k_out
        x = x + self.mlp(self.norm2(x))
        kx = kx + self.mlp(self.norm2(kx))
        if ix is not None:
            ix = ixn + i_out
            ix = ix + self.mlp_i(self.norm2_i(ix))
        return x, kx, ix


class IPCAModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        variant = cfg["variant"]
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r} (one of {VARIANTS})")
        d, heads = int(cfg["e_dim"]), int(cfg["heads"])
        if d % heads:
            raise ValueError(f"e_dim {d} is not a multiple of heads {heads}")
        self.variant = variant
        self.reference_padding = bool(cfg.get("reference_padding", False))
        self.reference_eval = bool(cfg.get("reference_eval", False))
        self.patch_embed = nn.Linear(int(cfg["in_dim"]), d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.kernel_token = nn.Parameter(torch.zeros(1, 1, d))
        if variant == IPCA:
            self.patch_embed_i = nn.Linear(int(cfg["in_dim"]), d)
            self.cls_token_i = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            Block(d, heads, float(cfg["mlp_ratio"]), int(cfg.get("num_prompts", 0)), variant)
            for _ in range(int(cfg["depth"]))
        )
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.head = nn.Linear(d, int(cfg["classes"]))
        if variant == IPCA:
            self.norm_i = nn.LayerNorm(d, eps=LN_EPS)
            self.head_i = nn.Linear(d, int(cfg["classes"]))

    @staticmethod
    def geometry(he_mask, dist, polar, anchor_mask, ihc_mask, reference_padding, probe=None):
        N = dist.shape[1]
        if not (0 <= int(dist.min()) and int(dist.max()) < DIST_BINS):
            raise ValueError(f"dist bins outside 0..{DIST_BINS - 1}")
        if not (0 <= int(polar.min()) and int(polar.max()) < POLAR_BINS):
            raise ValueError(f"polar sectors outside 0..{POLAR_BINS - 1}")
        real = he_mask > 0.5  # [N]
        areal = anchor_mask > 0.5  # [K]
        # The [CLS] column of dist/polar: the truncated mean of the anchor's
        # row, over all N columns (reference_padding) or over the real
        # patches (0 when there are none). The entries are non-negative
        # integers, so the truncated mean is an exact integer division.
        if reference_padding:
            cnt = N
            cd, cp = dist.sum(1), polar.sum(1)
        else:
            cnt = int(real.sum())
            cd, cp = (dist * real).sum(1), (polar * real).sum(1)
        if cnt > 0:
            cd, cp = torch.div(cd, cnt, rounding_mode="trunc"), torch.div(cp, cnt, rounding_mode="trunc")
        else:
            cd, cp = torch.zeros_like(cd), torch.zeros_like(cp)
        rd = torch.cat([cd.unsqueeze(1), dist], 1)  # [K, N+1]
        pol = torch.cat([cp.unsqueeze(1), polar], 1)  # [K, N+1]
        # keepKX: patch columns need a real anchor and a real patch; the
        # [CLS] column is always kept (reference_padding) or needs a real
        # anchor.
        cls_keep = torch.ones_like(areal) if reference_padding else areal
        keep_kx = torch.cat([cls_keep.unsqueeze(1), areal.unsqueeze(1) & real.unsqueeze(0)], 1)
        x_real = torch.cat([torch.ones(1, dtype=torch.bool), real])  # [N+1]
        orient_cols = torch.ones_like(x_real) if reference_padding else x_real
        ihc_real = None
        if ihc_mask is not None:
            ihc_real = torch.cat([torch.ones(1, dtype=torch.bool), ihc_mask > 0.5])
        return Geometry(rd, pol, keep_kx, orient_cols, x_real, ihc_real, probe)

    def forward(self, he, he_mask, dist, polar, anchor_mask, ihc=None, ihc_mask=None,
                he_only=False, reference_padding=None, reference_eval=None, probe=None):
        """Returns (logits [classes], logits_ihc [classes] or None).

        Training forward (variant ipca, he_only False): H&E + IHC. H&E-only
        forward: no IHC input; the prompt path is used unless the variant is
        pama or reference_eval is set."""
        ref_pad = self.reference_padding if reference_padding is None else reference_padding
        ref_eval = self.reference_eval if reference_eval is None else reference_eval
        use_ihc = self.variant == IPCA and not he_only
        if use_ihc and ihc is None:
            raise ValueError("the training forward of variant ipca needs IHC inputs")
        use_prompts = self.variant != PAMA and not (he_only and ref_eval)
        geo = self.geometry(he_mask, dist.long(), polar.long(), anchor_mask,
                            ihc_mask if use_ihc else None, ref_pad, probe)

        D = self.cls_token.shape[-1]
        K = dist.shape[0]
        # H&E tokens: [CLS] then the embedded patches, [N+1, D]; the kernel
        # token repeated once per anchor slot, [K, D].
        x = torch.cat([self.cls_token[0], self.patch_embed(he)], 0)
        kx = self.kernel_token[0].expand(K, D)
        # IHC tokens: [CLS_i] then the embedded IHC patches, [M+1, D].
        ix = torch.cat([self.cls_token_i[0], self.patch_embed_i(ihc)], 0) if use_ihc else None

        for blk in self.blocks:
            x, kx, ix = blk(x, kx, ix, geo, use_prompts)

        # Output: final LayerNorm, the [CLS] token, the head.
        logits = self.head(self.norm(x)[0])
        logits_ihc = self.head_i(self.norm_i(ix)[0]) if use_ihc else None
        return logits, logits_ihc


# ---------------------------------------------------------------------------
# Weights.


def init_weights(model, gen):
    """Draws every tensor so that every path matters: Linear weights
    N(0, 0.3²), biases N(0, 0.1²), LayerNorm weights 1+N(0, 0.1²) and biases
    N(0, 0.1²), dis_embed / polar_emb / tokens N(0, 1). Drawn in sorted-name
    order from gen, so the values do not depend on the variant's module set
    order; then rounded to float32."""
    kinds = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if isinstance(mod, nn.Linear):
                kinds[full] = (0.0, 0.3) if pname == "weight" else (0.0, 0.1)
            elif isinstance(mod, nn.LayerNorm):
                kinds[full] = (1.0, 0.1) if pname == "weight" else (0.0, 0.1)
            else:  # Embedding tables and the learned tokens
                kinds[full] = (0.0, 1.0)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            mean, std = kinds[name]
            p = params[name]
            vals = mean + std * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_(vals.float().to(p.dtype))


def state_to_numpy(model):
    return {k: v.detach().to(torch.float32).numpy().copy() for k, v in model.state_dict().items()}


def load_model(cfg, weights, dtype=torch.float32):
    """Builds the variant of cfg and loads weights (numpy arrays by name),
    strictly: every name of the variant and no other."""
    model = IPCAModel(cfg)
    sd = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
    model.load_state_dict(sd, strict=True)
    return model.to(dtype).eval()


def variant_subset(cfg, variant, weights):
    names = IPCAModel(dict(cfg, variant=variant)).state_dict().keys()
    return {k: weights[k] for k in names}


# ---------------------------------------------------------------------------
# Synthetic slides.


def make_geometry(rng, n_real, k_real, n_pad, k_pad, grid):
    """Distinct integer grid positions for the real patches, anchors drawn
    among them; dist bin floor(euclid / (diameter/64)) clamped to 0..64
    (diameter = largest pairwise distance of the real patches), polar sector
    floor(atan2(dcol, drow) / (π/4)) + 4 clamped to 0..7 with d = patch −
    anchor. Padded entries are 0."""
    cells = rng.choice(grid * grid, size=n_real, replace=False)
    pos = np.stack([cells // grid, cells % grid], 1).astype(np.float64)  # (row, col)
    anchors = rng.choice(n_real, size=k_real, replace=False)
    diff = pos[:, None, :] - pos[None, :, :]
    diameter = float(np.sqrt((diff ** 2).sum(-1)).max()) if n_real > 1 else 0.0
    d = pos[None, :, :] - pos[anchors][:, None, :]  # [k, n, 2] patch − anchor
    euclid = np.sqrt((d ** 2).sum(-1))
    if diameter > 0:
        dbin = np.clip(np.floor(euclid / (diameter / 64.0)), 0, 64).astype(np.int64)
    else:
        dbin = np.zeros(euclid.shape, np.int64)
    sector = np.floor(np.arctan2(d[..., 1], d[..., 0]) / (math.pi / 4)).astype(np.int64) + 4
    sector = np.clip(sector, 0, 7)
    dist = np.zeros((k_pad, n_pad), np.int64)
    polar = np.zeros((k_pad, n_pad), np.int64)
    dist[:k_real, :n_real] = dbin
    polar[:k_real, :n_real] = sector
    return dist, polar


def make_inputs(seed, in_dim, n_real, k_real, m_real, n_pad, k_pad, m_pad, grid=12):
    rng = np.random.default_rng(seed)
    dist, polar = make_geometry(rng, n_real, k_real, n_pad, k_pad, grid)
    mask = lambda real, pad: np.concatenate([np.ones(real, np.float32), np.zeros(pad - real, np.float32)])
    he = rng.standard_normal((n_pad, in_dim)).astype(np.float32)
    ihc = rng.standard_normal((m_pad, in_dim)).astype(np.float32)
    # Padded feature rows are zero, as the reference's data loader pads
    # (reference_padding mode reads them through the main orientation); the
    # default mode must not depend on them, which main() checks by filling
    # them with random values.
    he[n_real:] = 0
    ihc[m_real:] = 0
    return {
        "he": he,
        "he_mask": mask(n_real, n_pad),
        "dist": dist,
        "polar": polar,
        "anchor_mask": mask(k_real, k_pad),
        "ihc": ihc,
        "ihc_mask": mask(m_real, m_pad),
    }


def to_torch(inputs, dtype):
    t = {}
    for k, v in inputs.items():
        a = torch.from_numpy(np.asarray(v))
        t[k] = a.long() if k in ("dist", "polar") else a.to(dtype)
    return t


def run(model, inp, dtype, he_only=False, reference_padding=None, reference_eval=None, probe=None):
    t = to_torch(inp, dtype)
    with torch.no_grad():
        return model(t["he"], t["he_mask"], t["dist"], t["polar"], t["anchor_mask"],
                     t.get("ihc"), t.get("ihc_mask"), he_only=he_only,
                     reference_padding=reference_padding, reference_eval=reference_eval, probe=probe)


def all_outputs(models, inp, dtype, probes=None):
    """The golden outputs of one case. probes: None or a dict mode -> list
    (orientation margins per block, see Attention)."""
    pr = (lambda m: probes.setdefault(m, [])) if probes is not None else (lambda m: None)
    ipca, noproxy, pama = models[IPCA], models[NOPROXY], models[PAMA]
    out = {}
    lg, li = run(ipca, inp, dtype, probe=pr("default"))
    out["out_train_logits"], out["out_train_logits_ihc"] = lg, li
    out["out_he_logits"], _ = run(ipca, inp, dtype, he_only=True, probe=pr("default"))
    out["out_noproxy_logits"], _ = run(noproxy, inp, dtype, he_only=True, probe=pr("default"))
    out["out_pama_logits"], _ = run(pama, inp, dtype, he_only=True, probe=pr("default"))
    lg, li = run(ipca, inp, dtype, reference_padding=True, reference_eval=True, probe=pr("reference"))
    out["ref_train_logits"], out["ref_train_logits_ihc"] = lg, li
    out["ref_he_logits"], _ = run(ipca, inp, dtype, he_only=True, reference_padding=True,
                                  reference_eval=True, probe=pr("reference"))
    return {k: v.detach().to(torch.float64).numpy() for k, v in out.items()}


def min_margin(probes, anchor_mask):
    """Smallest orientation margin over the rows that reach the outputs: by
    default the real anchors only (a padded anchor is masked everywhere);
    with reference_padding every anchor slot ([CLS] attends to them)."""
    real = torch.from_numpy(anchor_mask > 0.5)
    m = math.inf
    for mode, lst in probes.items():
        for margin in lst:
            rows = margin[:, real] if mode == "default" else margin
            if rows.numel():
                m = min(m, float(rows.min()))
    return m


def max_abs_diff(a, b):
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a)


# ---------------------------------------------------------------------------
# Commands.


def cmd_golden(args):
    cfg = dict(GOLDEN_CONFIG)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    # Weights: drawn once for the full ipca variant; pama and ipca-noproxy
    # use subsets of the same tensors (strict loads check the names).
    full = IPCAModel(cfg)
    init_weights(full, gen)
    weights = state_to_numpy(full)
    expected = sorted(IPCAModel(cfg).state_dict().keys())
    assert sorted(weights) == expected
    pama_w = variant_subset(cfg, PAMA, weights)
    models = {v: {} for v in (torch.float32, torch.float64)}
    for dtype in models:
        for v in VARIANTS:
            models[dtype][v] = load_model(dict(cfg, variant=v), variant_subset(cfg, v, weights), dtype)
    m32, m64 = models[torch.float32], models[torch.float64]

    check_all_paths(m64[IPCA], cfg)

    with open(os.path.join(args.out, "config.json.tmp"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(args.out, "config.json.tmp"), os.path.join(args.out, "config.json"))
    meta = {"generator": "scripts/ipca_ref.py golden", "seed": SEED, "config": json.dumps(cfg, sort_keys=True)}
    write_safetensors(os.path.join(args.out, "weights.safetensors"), weights, dict(meta, variant=IPCA))
    write_safetensors(os.path.join(args.out, "weights_pama.safetensors"), pama_w,
                      dict(meta, variant=PAMA, config=json.dumps(dict(cfg, variant=PAMA), sort_keys=True)))

    N, K, M = cfg["max_patches"], cfg["max_anchors"], cfg["max_ihc_patches"]
    for ci, (name, (n_real, k_real, m_real)) in enumerate(sorted(CASES.items())):
        # Draw the slide until every main orientation that matters is clear.
        for attempt in range(200):
            seed = SEED * 1000 + ci * 100 + attempt
            inp = make_inputs(seed, cfg["in_dim"], n_real, k_real, m_real, N, K, M)
            probes = {}
            out32 = all_outputs(m32, inp, torch.float32, probes)
            margin = min_margin(probes, inp["anchor_mask"])
            if margin >= MIN_ORIENT_MARGIN:
                break
        else:
            raise SystemExit(f"case {name}: no slide with orientation margin ≥ {MIN_ORIENT_MARGIN}")
        out64 = all_outputs(m64, inp, torch.float64)
        d_default = max_abs_diff({k: out32[k] for k in out32 if k.startswith("out_")}, out64)
        d_ref = max_abs_diff({k: out32[k] for k in out32 if k.startswith("ref_")}, out64)
        print(f"case {name}: N {n_real}/{N} K {k_real}/{K} M {m_real}/{M} seed {seed} "
              f"(attempt {attempt}), min orientation margin {margin:.3g}, "
              f"|f32−f64| default {d_default:.2e} reference {d_ref:.2e}")
        assert d_default < 1e-4, f"case {name}: float32 and float64 disagree ({d_default})"

        # Structural checks of the spec.
        o = out32
        assert np.array_equal(o["out_train_logits"], o["out_he_logits"]), "train/H&E-only logits differ"
        assert np.allclose(o["out_noproxy_logits"], o["out_he_logits"], atol=1e-6), "noproxy differs"
        assert np.abs(o["out_pama_logits"] - o["out_he_logits"]).max() > 1e-3, "prompts do not matter"
        assert np.abs(o["ref_he_logits"] - o["out_he_logits"]).max() > 1e-3, "reference_eval does not matter"
        padded = n_real < N or k_real < K
        if padded:
            dr = float(np.abs(o["ref_train_logits"] - o["out_train_logits"]).max())
            print(f"  reference_padding changes the training logits by {dr:.3g}")
            assert dr > 1e-4, "reference_padding does not matter on a padded slide"
        else:
            assert np.allclose(o["ref_train_logits"], o["out_train_logits"], atol=1e-6)
            assert np.allclose(o["ref_train_logits_ihc"], o["out_train_logits_ihc"], atol=1e-6)

        if name == "b":
            check_padding_invariance(m32, inp, o, (n_real, k_real, m_real), seed)

        tensors = dict(inp)
        tensors.update({k: v.astype(np.float32) for k, v in o.items()})
        write_safetensors(os.path.join(args.out, f"case_{name}.safetensors"), tensors, {
            "case": name, "n_real": n_real, "k_real": k_real, "m_real": m_real, "seed": seed,
            "min_orientation_margin": f"{margin:.6g}", "generator": "scripts/ipca_ref.py golden",
        })

    for fn in sorted(os.listdir(args.out)):
        print(f"wrote {os.path.join(args.out, fn)} ({os.path.getsize(os.path.join(args.out, fn))} bytes)")


DEFAULT_KEYS = ("out_train_logits", "out_train_logits_ihc", "out_he_logits", "out_noproxy_logits", "out_pama_logits")


def check_padding_invariance(models, inp, out, reals, seed):
    """Default mode: the outputs do not change when the padding rows get
    other values, and equal those of the same slide without any padding."""
    n_real, k_real, m_real = reals
    rng = np.random.default_rng(seed + 7919)
    alt = {k: v.copy() for k, v in inp.items()}
    alt["he"][n_real:] = rng.standard_normal(alt["he"][n_real:].shape).astype(np.float32) * 3
    alt["ihc"][m_real:] = rng.standard_normal(alt["ihc"][m_real:].shape).astype(np.float32) * 3
    o2 = all_outputs(models, alt, torch.float32)
    d_alt = max(float(np.abs(o2[k] - out[k]).max()) for k in DEFAULT_KEYS)
    ref_alt = max(float(np.abs(o2[k] - out[k]).max()) for k in out if k.startswith("ref_"))
    # The same slide cut to its real rows (no padding at all).
    cut = {
        "he": inp["he"][:n_real], "he_mask": inp["he_mask"][:n_real],
        "dist": inp["dist"][:k_real, :n_real], "polar": inp["polar"][:k_real, :n_real],
        "anchor_mask": inp["anchor_mask"][:k_real],
        "ihc": inp["ihc"][:m_real], "ihc_mask": inp["ihc_mask"][:m_real],
    }
    o3 = all_outputs(models, cut, torch.float32)
    d_cut = max(float(np.abs(o3[k] - out[k]).max()) for k in DEFAULT_KEYS)
    print(f"  case b padding check (default mode): other padding values change the outputs by "
          f"{d_alt:.2e}, unpadded slide differs by {d_cut:.2e} "
          f"(reference mode changes by {ref_alt:.2e} with the other padding values)")
    assert d_alt <= 1e-6, f"padding values change the default-mode outputs ({d_alt})"
    assert d_cut <= 1e-5, f"the unpadded slide gives other outputs ({d_cut})"


def check_all_paths(model, cfg):
    """Every parameter tensor of variant ipca gets a non-zero gradient from
    the training logits (H&E + IHC) of a random padded slide, so every path
    matters (the query chunk of qkv_i2 is unused by construction)."""
    inp = make_inputs(SEED + 1, cfg["in_dim"], 25, 4, 17, cfg["max_patches"], cfg["max_anchors"],
                      cfg["max_ihc_patches"])
    t = to_torch(inp, torch.float64)
    model.zero_grad()
    with torch.enable_grad():
        lg, li = model(t["he"], t["he_mask"], t["dist"], t["polar"], t["anchor_mask"], t["ihc"], t["ihc_mask"])
        g = torch.Generator().manual_seed(1)
        w1 = torch.randn(lg.shape, generator=g, dtype=torch.float64)
        w2 = torch.randn(li.shape, generator=g, dtype=torch.float64)
        ((lg * w1).sum() + (li * w2).sum()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or float(p.grad.abs().max()) == 0]
    assert not dead, f"parameters without effect: {dead}"
    d = cfg["e_dim"]
    for i, blk in enumerate(model.blocks):
        gq = blk.attn.qkv_i2.weight.grad
        assert float(gq[:d].abs().max()) == 0 and float(gq[d:].abs().max()) > 0
    model.zero_grad()
    print(f"all {len(list(model.parameters()))} parameter tensors reach the outputs")


def read_config(path):
    with open(path) as f:
        cfg = json.load(f)
    for key in ("variant", "in_dim", "e_dim", "depth", "heads", "mlp_ratio", "classes"):
        if key not in cfg:
            raise SystemExit(f"{path}: missing {key}")
    if cfg["variant"] in (IPCA, NOPROXY) and "num_prompts" not in cfg:
        raise SystemExit(f"{path}: missing num_prompts")
    return cfg


def cmd_forward(args):
    cfg = read_config(args.config)
    if args.variant:
        cfg["variant"] = args.variant
    weights, _ = read_safetensors(args.weights)
    inputs, _ = read_safetensors(args.inputs)
    dtype = torch.float64 if args.float64 else torch.float32
    model = load_model(cfg, weights, dtype)
    inp = {k: inputs[k] for k in ("he", "he_mask", "dist", "polar", "anchor_mask")}
    he_only = args.he_only or cfg["variant"] != IPCA
    if not he_only:
        inp["ihc"], inp["ihc_mask"] = inputs["ihc"], inputs["ihc_mask"]
    lg, li = run(model, inp, dtype, he_only=he_only)
    res = {"variant": cfg["variant"], "he_only": he_only,
           "reference_padding": model.reference_padding, "reference_eval": model.reference_eval,
           "logits": [float(v) for v in lg]}
    if li is not None:
        res["logits_ihc"] = [float(v) for v in li]
    print(json.dumps(res))


def cmd_bench(args):
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    cfg = dict(BENCH_CONFIG)
    model = IPCAModel(cfg)
    init_weights(model, torch.Generator().manual_seed(SEED))
    model.train()
    N, K, M = cfg["max_patches"], cfg["max_anchors"], cfg["max_ihc_patches"]
    inp = make_inputs(SEED, cfg["in_dim"], N, K, M, N, K, M, grid=64)
    t = to_torch(inp, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    y = torch.tensor([2])
    y_i = torch.tensor([2])

    def step():
        opt.zero_grad(set_to_none=True)
        lg, li = model(t["he"], t["he_mask"], t["dist"], t["polar"], t["anchor_mask"], t["ihc"], t["ihc_mask"])
        loss = F.cross_entropy(lg.unsqueeze(0), y) + F.cross_entropy(li.unsqueeze(0), y_i)
        loss.backward()
        opt.step()
        return float(loss)

    t0 = time.perf_counter()
    step()  # warm-up, not timed
    warm = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({
        "step_s_median": round(statistics.median(times), 4),
        "steps": args.steps,
        "threads": threads,
        "peak_rss_mb": round(rss_mb, 1),
        "warmup_s": round(warm, 4),
        "step_s_all": [round(x, 4) for x in times],
        "torch": torch.__version__,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden", help="write the parity goldens")
    g.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                 "model", "testdata", "parity"))
    f = sub.add_parser("forward", help="print the logits of one input file as JSON")
    f.add_argument("--weights", required=True)
    f.add_argument("--config", required=True)
    f.add_argument("--inputs", required=True)
    f.add_argument("--he-only", action="store_true", help="H&E-only forward (no IHC branch)")
    f.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    f.add_argument("--variant", choices=VARIANTS, help="override the config's variant (e.g. pama with weights_pama)")
    b = sub.add_parser("bench", help="time training steps of the default-size model on the CPU")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: os.cpu_count())")
    b.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    if args.cmd == "golden":
        args.out = os.path.normpath(args.out)
        cmd_golden(args)
    elif args.cmd == "forward":
        cmd_forward(args)
    else:
        if args.steps < 1:
            ap.error("--steps must be ≥ 1")
        cmd_bench(args)


if __name__ == "__main__":
    main()
