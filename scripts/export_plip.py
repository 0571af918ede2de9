#!/usr/bin/python3
"""Export the PLIP image encoder (CLIP ViT-B/32 vision tower + visual projection, Hugging Face
`vinid/plip`) to ONNX for her2wsi, with a manifest next to each model.

Needs torch + onnx + numpy + Pillow; no transformers (the vision tower is defined here in plain
torch with the exact Hugging Face parameter names). Works with Debian 12's torch 1.13 (use
/usr/bin/python3) and with torch 2.x.

    # with the weights (a Hugging Face model folder: config.json + model.safetensors or
    # pytorch_model.bin, full CLIPModel or CLIPVisionModelWithProjection):
    /usr/bin/python3 scripts/export_plip.py --weights /path/to/plip --out-dir models/
    # a random-init model of the same architecture (benchmarks, tests):
    /usr/bin/python3 scripts/export_plip.py --random --seed 0 --out-dir .cache/models --name vit-b32-random

Writes, for --name NAME (default plip) and --contract both (the default):
    NAME.onnx + NAME.json           contract "clip-pixel-values": pixel_values float32 [N,3,224,224]
                                    (already resized + CLIP-normalised) -> image_embeds float32 [N,D]
    NAME-raw.onnx + NAME-raw.json   contract "raw-uint8": patches uint8 [N,256,256,3] -> in-graph
                                    PIL-bicubic resize 256->224 + normalisation -> image_embeds [N,D]
With --fp16 the files are NAME-fp16.onnx / NAME-raw-fp16.onnx: weights and compute in float16,
but the graph boundary stays float32/uint8 in and float32 out (casts inside).
Every manifest carries "name": NAME (the encoder name used for feature file names).

After export each file is verified against the PyTorch model: with onnxruntime when it is
importable, else with the numpy reference evaluator in make_test_encoders.py (and it says that
runtime verification was skipped). The raw contract's in-graph preprocessing is also checked
against PIL (Image.resize BICUBIC + normalise).
"""

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_test_encoders as mte  # noqa: E402  (shared: PIL matrix, preprocessing graph, evaluator)

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("export_plip: torch is needed (Debian: apt-get install -y --no-install-recommends "
             "python3-torch python3-onnx python3-numpy python3-pil; run with /usr/bin/python3)")


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------

VIT_B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
               image_size=224, patch_size=32, num_channels=3, hidden_act="quick_gelu",
               layer_norm_eps=1e-5, projection_dim=512, initializer_range=0.02, initializer_factor=1.0)


def read_config(path):
    """Vision config from a Hugging Face config.json (CLIPConfig or CLIPVisionConfig);
    missing fields take the CLIPVisionConfig defaults (ViT-B/32). path None: the defaults."""
    cfg = dict(VIT_B32)
    if not path:
        return cfg, None
    with open(path) as f:
        raw = json.load(f)
    vision = raw.get("vision_config")
    if isinstance(vision, dict):             # full CLIPConfig: projection_dim is top-level
        src = dict(vision)
        if "projection_dim" in raw:
            src["projection_dim"] = raw["projection_dim"]
    else:                                     # CLIPVisionConfig / CLIPVisionModelWithProjection
        src = raw
    for k in cfg:
        if k in src and src[k] is not None:
            cfg[k] = src[k]
    return cfg, raw


# ---------------------------------------------------------------------------
# the model, with Hugging Face CLIP parameter names
# ---------------------------------------------------------------------------

def _act(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if name == "relu":
        return F.relu
    raise SystemExit("export_plip: hidden_act %r is not supported" % name)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.class_embedding = nn.Parameter(torch.zeros(d))
        self.patch_embedding = nn.Conv2d(c["num_channels"], d, kernel_size=c["patch_size"],
                                         stride=c["patch_size"], bias=False)
        self.num_positions = (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.position_embedding = nn.Embedding(self.num_positions, d)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)   # [B, P, D]
        cls = self.class_embedding.reshape(1, 1, -1).expand(b, 1, -1)
        x = torch.cat([cls, patches], dim=1)
        return x + self.position_embedding.weight.unsqueeze(0)


class CLIPAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.num_heads = c["num_attention_heads"]
        self.head_dim = d // self.num_heads
        if self.head_dim * self.num_heads != d:
            raise SystemExit("export_plip: hidden_size %d not divisible by %d heads" % (d, self.num_heads))
        self.scale = self.head_dim ** -0.5
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        b, n = x.shape[0], x.shape[1]
        h, hd = self.num_heads, self.head_dim
        q = (self.q_proj(x) * self.scale).reshape(b, n, h, hd).transpose(1, 2)
        k = self.k_proj(x).reshape(b, n, h, hd).transpose(1, 2)
        v = self.v_proj(x).reshape(b, n, h, hd).transpose(1, 2)
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, h * hd)
        return self.out_proj(out)


class CLIPMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = _act(c["hidden_act"])
        self.fc1 = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.fc2 = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c["layer_norm_eps"]
        self.self_attn = CLIPAttention(c)
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=eps)
        self.mlp = CLIPMLP(c)
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class CLIPVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c["layer_norm_eps"]
        self.embeddings = CLIPVisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=eps)    # sic: HF's spelling
        self.encoder = CLIPEncoder(c)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, pixel_values):
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        x = self.encoder(x)
        return self.post_layernorm(x[:, 0, :])                          # pooled [CLS]


class CLIPVisionWithProjection(nn.Module):
    """= transformers' CLIPVisionModelWithProjection / CLIPModel.get_image_features."""

    def __init__(self, c):
        super().__init__()
        self.config = dict(c)
        self.vision_model = CLIPVisionTransformer(c)
        self.visual_projection = nn.Linear(c["hidden_size"], c["projection_dim"], bias=False)

    def forward(self, pixel_values):
        return self.visual_projection(self.vision_model(pixel_values))


def random_init(model, seed):
    """transformers' CLIPPreTrainedModel._init_weights, seeded."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    d, L = c["hidden_size"], c["num_hidden_layers"]
    fac, rng_std = c["initializer_factor"], c["initializer_range"]

    def normal(t, std):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=g) * std)

    vm = model.vision_model
    normal(vm.embeddings.class_embedding, d ** -0.5 * fac)
    normal(vm.embeddings.patch_embedding.weight, rng_std * fac)
    normal(vm.embeddings.position_embedding.weight, rng_std * fac)
    in_std = (d ** -0.5) * ((2 * L) ** -0.5) * fac
    out_std = (d ** -0.5) * fac
    fc_std = (2 * d) ** -0.5 * fac
    for layer in vm.encoder.layers:
        a = layer.self_attn
        for lin, std in ((a.q_proj, in_std), (a.k_proj, in_std), (a.v_proj, in_std), (a.out_proj, out_std),
                         (layer.mlp.fc1, fc_std), (layer.mlp.fc2, in_std)):
            normal(lin.weight, std)
            nn.init.zeros_(lin.bias)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    normal(model.visual_projection.weight, d ** -0.5 * fac)


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """Parse a .safetensors file with numpy (8-byte little-endian header length, JSON header,
    raw little-endian tensors). Returns {name: float32/int numpy array}."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in load_file(path).items()}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = data[b:e]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(buf.tobytes(), dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dt in _ST_DTYPES:
            arr = np.frombuffer(buf.tobytes(), dtype=np.dtype(_ST_DTYPES[dt]).newbyteorder("<"))
        else:
            raise SystemExit("export_plip: %s: tensor %s has unsupported dtype %s" % (path, name, dt))
        arr = arr.reshape(info["shape"])
        if arr.dtype in (np.float16, np.float64):
            arr = arr.astype(np.float32)
        out[name] = arr
    return out


def read_torch_bin(path):
    kw = {"map_location": "cpu"}
    try:
        sd = torch.load(path, weights_only=True, **kw)
    except TypeError:           # torch < 1.13 has no weights_only
        sd = torch.load(path, **kw)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return {k: (v.float().numpy() if v.is_floating_point() else v.numpy()) for k, v in sd.items()
            if hasattr(v, "numpy")}


def read_weight_files(weights):
    """weights: a folder (HF layout, possibly sharded) or a single .safetensors/.bin file."""
    if os.path.isfile(weights):
        return (read_safetensors(weights) if weights.endswith(".safetensors") else read_torch_bin(weights)), [weights]
    for index, reader in (("model.safetensors.index.json", read_safetensors),
                          ("pytorch_model.bin.index.json", read_torch_bin)):
        ip = os.path.join(weights, index)
        if os.path.exists(ip):
            with open(ip) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            sd = {}
            for s in shards:
                sd.update(reader(os.path.join(weights, s)))
            return sd, [os.path.join(weights, s) for s in shards]
    for fname, reader in (("model.safetensors", read_safetensors), ("pytorch_model.bin", read_torch_bin)):
        p = os.path.join(weights, fname)
        if os.path.exists(p):
            return reader(p), [p]
    raise SystemExit("export_plip: no model.safetensors, pytorch_model.bin or shard index in %s" % weights)


IGNORED_PREFIXES = ("text_model.", "text_projection.", "logit_scale")


def map_state_dict(src, model):
    """Map checkpoint keys onto the model's (HF) names. Accepts full CLIPModel checkpoints
    (text tower ignored), CLIPVisionModelWithProjection, and vision-only names without the
    'vision_model.' prefix; position_ids buffers are ignored. Fails listing missing and
    unexpected keys, and shape mismatches."""
    expected = model.state_dict()
    if any(k.startswith("visual.") for k in src) and not any("vision_model." in k for k in src):
        raise SystemExit("export_plip: these look like OpenAI-format CLIP weights (visual.*); convert them to "
                         "the Hugging Face layout first (transformers' convert_clip_original_pytorch_to_hf.py)")
    mapped, ignored, unexpected = {}, [], []
    for k, v in src.items():
        key = k
        for pre in ("module.", "model.", "clip."):
            if key.startswith(pre) and key[len(pre):].split(".")[0] in (
                    "vision_model", "visual_projection", "text_model", "text_projection", "logit_scale"):
                key = key[len(pre):]
        if key.startswith(IGNORED_PREFIXES) or key.endswith("position_ids"):
            ignored.append(k)
            continue
        if key.split(".")[0] in ("embeddings", "encoder", "pre_layrnorm", "post_layernorm"):
            key = "vision_model." + key
        if key in expected:
            mapped[key] = v
        else:
            unexpected.append(k)
    missing = sorted(set(expected) - set(mapped))
    bad_shape = ["%s: checkpoint %s, model %s" % (k, tuple(v.shape), tuple(expected[k].shape))
                 for k, v in sorted(mapped.items()) if tuple(v.shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad_shape:
        msg = ["export_plip: the checkpoint does not fit the CLIP vision tower + projection:"]
        if missing:
            msg.append("  missing keys (%d): %s" % (len(missing), ", ".join(missing[:40]) + (" ..." if len(missing) > 40 else "")))
            if "visual_projection.weight" in missing and len(missing) == 1:
                msg.append("  (a CLIPVisionModel without projection? PLIP's features are the 512-d projection)")
        if unexpected:
            msg.append("  unexpected keys (%d): %s" % (len(unexpected), ", ".join(sorted(unexpected)[:40])))
        if bad_shape:
            msg.append("  shape mismatches (config.json vs weights?): " + "; ".join(bad_shape[:20]))
        raise SystemExit("\n".join(msg))
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in mapped.items()}, ignored


# ---------------------------------------------------------------------------
# ONNX export and graph surgery
# ---------------------------------------------------------------------------

class ImageFeatures(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        return self.m(pixel_values)


def torch_export(model, opset, device, path):
    """TorchScript-based torch.onnx.export (dynamo=False where that argument exists)."""
    wrapper = ImageFeatures(model).eval()
    dummy = torch.zeros(2, 3, model.config["image_size"], model.config["image_size"], device=device)
    kw = dict(input_names=["pixel_values"], output_names=["image_embeds"], opset_version=opset,
              dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
              do_constant_folding=True)
    import inspect
    has_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters
    if has_dynamo:
        kw["dynamo"] = False
    try:
        with torch.no_grad():
            torch.onnx.export(wrapper, (dummy,), path, **kw)
        return onnx.load(path), "torchscript"
    except Exception as e:  # a torch without the TorchScript exporter: try torch.export
        if not has_dynamo:
            raise
        print("export_plip: the TorchScript exporter failed (%s: %s); trying dynamo=True" % (type(e).__name__, e))
    kw.update(dynamo=True, external_data=False, opset_version=max(opset, 18))
    with torch.no_grad():
        torch.onnx.export(wrapper, (dummy,), path, **kw)
    return onnx.load(path), "dynamo"


def tidy(model, producer):
    """Strip exporter doc strings / value_info, name the batch axis, set a fixed producer."""
    g = model.graph
    for n in g.node:
        n.doc_string = ""
    g.doc_string = ""
    model.doc_string = ""
    del g.value_info[:]
    for vi in list(g.input) + list(g.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_param = "batch"
    model.producer_name, model.producer_version = producer, "1"
    return model


def convert_fp16(model):
    """Weights and compute to float16; pixel_values stays float32 in and image_embeds float32
    out (Cast nodes inside the graph)."""
    g = model.graph
    clipped = 0
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            a = numpy_helper.to_array(t)
            c = np.clip(a, -65504, 65504)
            clipped += int((c != a).sum())
            g.initializer[i].CopyFrom(numpy_helper.from_array(c.astype(np.float16), t.name))
    for n in g.node:
        for at in n.attribute:
            if n.op_type == "Cast" and at.name == "to" and at.i == TensorProto.FLOAT:
                at.i = TensorProto.FLOAT16
            if at.type == onnx.AttributeProto.TENSOR and at.t.data_type == TensorProto.FLOAT:
                a = numpy_helper.to_array(at.t)
                at.t.CopyFrom(numpy_helper.from_array(np.clip(a, -65504, 65504).astype(np.float16), at.t.name))
    if clipped:
        print("  fp16: %d weight values clipped to the float16 range" % clipped)
    inp, out = g.input[0].name, g.output[0].name
    in16, out16 = inp + "_fp16", out + "_fp16"
    for n in g.node:
        for j, name in enumerate(n.input):
            if name == inp:
                n.input[j] = in16
            elif name == out:
                n.input[j] = out16
        for j, name in enumerate(n.output):
            if name == out:
                n.output[j] = out16
    nodes = [helper.make_node("Cast", [inp], [in16], name="cast_input_fp16", to=TensorProto.FLOAT16)]
    nodes += list(g.node)
    nodes.append(helper.make_node("Cast", [out16], [out], name="cast_output_fp32", to=TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


def make_raw(core):
    """Prefix the core (pixel_values -> image_embeds) with the raw-uint8 preprocessing graph."""
    m = onnx.ModelProto()
    m.CopyFrom(core)
    g = m.graph
    pn, pi = mte.preprocess_subgraph("patches", g.input[0].name)
    names = {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
    clash = names & ({t.name for t in pi} | {o for n in pn for o in n.output if o != g.input[0].name})
    if clash:
        raise SystemExit("export_plip: name clash composing the raw graph: %s" % sorted(clash))
    nodes = pn + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    inits = list(pi) + list(g.initializer)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.extend([helper.make_tensor_value_info("patches", TensorProto.UINT8,
                                                  ["batch", mte.PATCH_SIZE, mte.PATCH_SIZE, 3])])
    return m


def save(model, path):
    data = model.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    onnx.checker.check_model(path)
    return hashlib.sha256(data).hexdigest(), len(data)


# ---------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------

def run_onnx(path, model, feeds):
    """(outputs, how): onnxruntime if importable, else the numpy reference evaluator."""
    out = mte.try_onnxruntime(path, feeds)
    if out is not None:
        return out["image_embeds"], "onnxruntime"
    return mte.run_reference(model, feeds)["image_embeds"], "numpy reference evaluator"


def compare(label, got, ref, fp16):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    d = np.abs(got - ref).max()
    scale = np.abs(ref).max()
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1) + 1e-30)
    tol_rel, tol_cos = (2e-2, 0.999) if fp16 else (1e-4, 0.999999)
    ok = d <= tol_rel * scale + 1e-6 and cos.min() >= tol_cos
    print("  %-62s max|diff| %.3g (max|ref| %.3g) min cos %.7f %s" % (label, d, scale, cos.min(), "ok" if ok else "FAIL"))
    return ok


def transformers_check(model, x):
    """If transformers is importable, load our state dict into its CLIPVisionModelWithProjection
    and compare: proves the parameter names and the architecture."""
    try:
        import transformers
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    except Exception:
        print("  transformers: not importable -- cross-check against CLIPVisionModelWithProjection skipped")
        return True
    c = model.config
    hc = CLIPVisionConfig(**{k: c[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                "num_attention_heads", "image_size", "patch_size",
                                                "num_channels", "hidden_act", "layer_norm_eps", "projection_dim")})
    hf = CLIPVisionModelWithProjection(hc).eval()
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    res = hf.load_state_dict(sd, strict=False)
    miss = [k for k in res.missing_keys if not k.endswith("position_ids")]
    if miss or res.unexpected_keys:
        print("  transformers %s: state dict mismatch: missing %s unexpected %s FAIL"
              % (transformers.__version__, miss, res.unexpected_keys))
        return False
    with torch.no_grad():
        want = hf(pixel_values=torch.from_numpy(x)).image_embeds.numpy()
        got = model.float().cpu()(torch.from_numpy(x)).numpy()
    return compare("this model vs transformers %s CLIPVisionModelWithProjection" % transformers.__version__,
                   got, want, False)


def verify(model, files, n, seed):
    """Compare each exported file with the torch model; check the raw preprocessing vs PIL."""
    ok = True
    patches = mte.sample_patches(n, seed=seed + 1)
    x_pil = mte.pil_preprocess(patches)
    x_raw = mte.raw_preprocess_numpy(patches)
    cpu = model.float().cpu().eval()
    with torch.no_grad():
        ref_pil = cpu(torch.from_numpy(x_pil)).numpy()
        ref_raw = cpu(torch.from_numpy(x_raw)).numpy()
    print("verification, batch of %d patches (noise / gradient / near-white):" % n)
    ok &= transformers_check(cpu, x_pil)
    how_used = set()
    for f in files:
        m = f["model"]
        if f["contract"] == "clip-pixel-values":
            got, how = run_onnx(f["path"], m, {"pixel_values": x_pil})
            ok &= compare("%s [%s] vs torch" % (os.path.basename(f["path"]), how), got, ref_pil, f["fp16"])
        else:
            got, how = run_onnx(f["path"], m, {"patches": patches})
            ok &= compare("%s [%s] vs torch(raw preprocessing)" % (os.path.basename(f["path"]), how),
                          got, ref_raw, f["fp16"])
            # the in-graph preprocessing alone, against PIL
            pn, pi = mte.preprocess_subgraph("patches", "pixel_values")
            pre = helper.make_model(helper.make_graph(
                pn, "pre", [helper.make_tensor_value_info("patches", TensorProto.UINT8, ["batch", 256, 256, 3])],
                [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
                initializer=pi), opset_imports=[helper.make_opsetid("", mte.OPSET)])
            pre.ir_version = mte.IR_VERSION
            x_graph = mte.run_reference(pre, {"patches": patches})["pixel_values"]
            d = float(np.abs(x_graph.astype(np.float64) - x_pil).max())
            print("  %-62s max|diff| %.4f (tol 0.02) %s" % ("in-graph preprocessing vs PIL resize+normalise", d,
                                                           "ok" if d < 0.02 else "FAIL"))
            ok &= d < 0.02
            ok &= compare("%s vs torch(PIL preprocessing) [informative]" % os.path.basename(f["path"]),
                          got, ref_pil, True)
        how_used.add(how)
    if "onnxruntime" not in how_used:
        print("  NOTE: onnxruntime is not importable here: runtime verification SKIPPED. The files were "
              "checked with onnx.checker and the numpy reference evaluator; her2wsi's Go tests run "
              "encoders in ONNX Runtime.")
    return ok


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="HF model folder (config.json + model.safetensors / pytorch_model.bin) or a weights file")
    src.add_argument("--random", action="store_true", help="random init (transformers' CLIP init), ViT-B/32 unless --config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", help="config.json to take the sizes from (default: WEIGHTS/config.json, else ViT-B/32)")
    ap.add_argument("--out-dir", default=".")
    ap.add_argument("--name", default="plip", help="encoder name (manifest 'name', file base name)")
    ap.add_argument("--source", help="manifest 'source' (default: vinid/plip for --weights, 'random init, seed N' for --random)")
    ap.add_argument("--contract", choices=["clip", "raw", "both"], default="both")
    ap.add_argument("--fp16", action="store_true", help="write float16 models (NAME-fp16.onnx, NAME-raw-fp16.onnx) instead")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--batch-check", type=int, default=3, help="batch size of the verification run (0: skip)")
    ap.add_argument("--device", default="cpu", help="torch device for the export trace (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()
    if args.opset < 14:
        ap.error("--opset must be >= 14")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()

    cfg_path = args.config
    if not cfg_path and args.weights:
        d = args.weights if os.path.isdir(args.weights) else os.path.dirname(os.path.abspath(args.weights))
        if os.path.exists(os.path.join(d, "config.json")):
            cfg_path = os.path.join(d, "config.json")
        else:
            print("export_plip: no config.json next to the weights: assuming CLIP ViT-B/32 sizes")
    cfg, _ = read_config(cfg_path)
    model = CLIPVisionWithProjection(cfg).eval()
    if args.random:
        random_init(model, args.seed)
        source = args.source or "random init, seed %d (CLIP ViT-B/32 architecture, transformers' init)" % args.seed
        print("model: random init, seed %d" % args.seed)
    else:
        sd, paths = read_weight_files(args.weights)
        weights, ignored = map_state_dict(sd, model)
        model.load_state_dict(weights, strict=True)
        source = args.source or "vinid/plip"
        print("model: %s (%d tensors loaded, %d ignored: text tower / position_ids)" % (
            ", ".join(paths), len(weights), len(ignored)))
    nparams = sum(p.numel() for p in model.parameters())
    print("config: hidden %d, layers %d, heads %d, mlp %d, patch %d, image %d, projection %d, act %s, eps %g; %.1fM parameters"
          % (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["intermediate_size"],
             cfg["patch_size"], cfg["image_size"], cfg["projection_dim"], cfg["hidden_act"], cfg["layer_norm_eps"],
             nparams / 1e6))
    if cfg["image_size"] != mte.INPUT_SIZE:
        raise SystemExit("export_plip: image_size %d: her2wsi's contracts take 224x224 input" % cfg["image_size"])

    device = torch.device(args.device)
    model.to(device)
    os.makedirs(args.out_dir, exist_ok=True)
    t1 = time.time()
    with tempfile.TemporaryDirectory(dir=args.out_dir) as tmp:
        core, exporter = torch_export(model, args.opset, device, os.path.join(tmp, "core.onnx"))
    opset = next(o.version for o in core.opset_import if o.domain in ("", "ai.onnx"))
    t_export = time.time() - t1
    core = tidy(core, "her2wsi export_plip")
    precision = "fp32"
    if args.fp16:
        core = convert_fp16(core)
        precision = "fp16"
    suffix = "-fp16" if args.fp16 else ""
    model.cpu()

    files = []
    todo = []
    if args.contract in ("clip", "both"):
        todo.append(("clip-pixel-values", args.name + suffix, core))
    if args.contract in ("raw", "both"):
        todo.append(("raw-uint8", args.name + "-raw" + suffix, make_raw(core)))
    for contract, base, m in todo:
        path = os.path.join(args.out_dir, base + ".onnx")
        sha, size = save(m, path)
        man = mte.manifest(args.name, contract, cfg["projection_dim"], sha, source, precision=precision, opset=opset)
        mte.write_json(os.path.join(args.out_dir, base + ".json"), man)
        files.append(dict(path=path, model=m, contract=contract, fp16=args.fp16, sha=sha, size=size))
    t_write = time.time() - t1

    ok = True
    if args.batch_check > 0:
        t2 = time.time()
        ok = verify(model, files, args.batch_check, args.seed)
        print("  verification took %.1f s" % (time.time() - t2))

    print("summary: torch %s (%s exporter), onnx %s, opset %d, %s, device %s" % (
        torch.__version__, exporter, onnx.__version__, opset, precision, args.device))
    for f in files:
        print("  %s  %.1f MB  %s  sha256 %s" % (f["path"], f["size"] / 1e6, f["contract"], f["sha"]))
        print("  %s" % (os.path.splitext(f["path"])[0] + ".json"))
    print("  export (trace) %.1f s, export + write %.1f s, total %.1f s" % (t_export, t_write, time.time() - t0))
    if not ok:
        print("export_plip: verification FAILED")
        return 1
    print("export_plip: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
