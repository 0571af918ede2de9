#!/usr/bin/python3
"""Generate the tiny ONNX image encoders the Go tests run (features/testdata/encoders/).

Needs only numpy + onnx (Debian: python3-numpy python3-onnx; use /usr/bin/python3).
No torch. The output is byte-for-byte deterministic: fixed names, fixed producer,
no timestamps, so running this twice gives identical files (see --check).

    /usr/bin/python3 scripts/make_test_encoders.py                 # (re)write the test models
    /usr/bin/python3 scripts/make_test_encoders.py --check         # verify the committed files are current

Models (N = dynamic batch axis "batch"):

  tiny-clip.onnx   contract "clip-pixel-values": pixel_values float32 [N,3,224,224] -> image_embeds float32 [N,8]
  tiny-raw.onnx    contract "raw-uint8": patches uint8 [N,256,256,3] -> in-graph PIL-bicubic resize 256->224
                   + CLIP normalisation -> the same tiny head -> image_embeds float32 [N,8]
  noname-clip.onnx tiny-clip's graph, no manifest (contract inference test)
  bad-shape.onnx   pixel_values float32 [N,3,128,96] (not [N,3,S,S]) -> image_embeds [N,8], no manifest
                   (loader error test)
  bad-io.onnx      two inputs (pixel_values [N,3,224,224], extra [N,1]) -> image_embeds [N,8], no manifest

The tiny head, on the normalised image X [N,3,224,224] (rows h, columns w, all means over
the stated region, float32):

  f[0:3] = mean_{h,w} X[c]                       c = 0,1,2
  f[3:6] = mean_{h,w} X[c]^2                     c = 0,1,2
  f[6]   = mean X[0, :, w<112] - mean X[0, :, w>=112]    (channel 0, left half minus right half)
  f[7]   = mean X[1, h<112, :] - mean X[1, h>=112, :]    (channel 1, top half minus bottom half)

This module also holds the shared pieces export_plip.py imports: the PIL bicubic
resampling matrix, the raw-uint8 preprocessing subgraph, and a small numpy reference
evaluator for ONNX graphs (used to verify exported files where onnxruntime is absent).
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover
    sys.exit("make_test_encoders: the onnx Python package is needed "
             "(apt-get install -y --no-install-recommends python3-onnx; run with /usr/bin/python3)")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
PATCH_SIZE = 256
OPSET = 17
IR_VERSION = 8          # what onnx 1.12 writes for opset 17; ONNX Runtime 1.30 reads it
PRODUCER = "her2wsi make_test_encoders"
PRODUCER_VERSION = "1"
TINY_DIM = 8
HEAD_FORMULAS = (
    "tiny head on the normalised image X[N,3,224,224]: f[0:3]=mean_{h,w} X[c]; "
    "f[3:6]=mean_{h,w} X[c]^2; f[6]=mean X[0,:,w<112]-mean X[0,:,w>=112] (left minus right); "
    "f[7]=mean X[1,h<112,:]-mean X[1,h>=112,:] (top minus bottom)")


# ---------------------------------------------------------------------------
# PIL's antialiased bicubic resampling, as a matrix
# ---------------------------------------------------------------------------

def _bicubic_filter(x, a=-0.5):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def pil_bicubic_matrix(in_size, out_size):
    """Resampling matrix M [out_size, in_size] (float64) with out = M @ in, equal to
    Pillow's precompute_coeffs for the BICUBIC filter (support 2, a = -0.5), in double
    precision before Pillow's fixed-point rounding."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = np.array([_bicubic_filter((x + xmin - center + 0.5) / filterscale) for x in range(xmax)])
        s = w.sum()
        if s != 0.0:
            w = w / s
        m[xx, xmin:xmin + xmax] = w
    return m


def pil_preprocess(patches):
    """Reference preprocessing (what the Go side does for contract clip-pixel-values):
    uint8 [N,256,256,3] -> PIL Image.resize((224,224), BICUBIC) -> /255 -> (x-mean)/std,
    float32 [N,3,224,224]."""
    from PIL import Image
    out = []
    for p in patches:
        r = Image.fromarray(np.ascontiguousarray(p), "RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)
        out.append(np.asarray(r, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0))
    x = np.stack(out)
    return normalise(x)


def normalise(x):
    mean = np.array(CLIP_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array(CLIP_STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def raw_preprocess_numpy(patches):
    """numpy mirror of the in-graph raw-uint8 preprocessing (float32 throughout)."""
    w = pil_bicubic_matrix(PATCH_SIZE, INPUT_SIZE).astype(np.float32)
    x = patches.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    x = np.clip(x @ w.T, 0.0, 1.0)
    x = np.clip(w @ x, 0.0, 1.0)
    return normalise(x)


# ---------------------------------------------------------------------------
# graph builders
# ---------------------------------------------------------------------------

def _f32(name, values, shape=None):
    a = np.asarray(values, dtype=np.float32)
    if shape is not None:
        a = a.reshape(shape)
    return numpy_helper.from_array(a, name)


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def preprocess_subgraph(input_name="patches", output_name="pixel_values", prefix="preprocess/"):
    """raw-uint8 preprocessing: uint8 [N,256,256,3] -> float32 [N,3,224,224].

    x = float(patches) / 255, NHWC -> NCHW
    x = clip(x @ Wᵀ, 0, 1)        horizontal pass (Pillow resizes horizontally first)
    x = clip(W @ x, 0, 1)         vertical pass
    x = (x - mean) / std
    W = pil_bicubic_matrix(256, 224) in float32. The clips are where Pillow saturates
    to 0..255; its uint8 rounding of the intermediate and final images is not modelled.
    Returns (nodes, initializers)."""
    p = prefix
    w = pil_bicubic_matrix(PATCH_SIZE, INPUT_SIZE).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, p + "resize_w"),           # [224,256], rows sum to 1
        _f32(p + "scale255", 255.0),
        _f32(p + "zero", 0.0),
        _f32(p + "one", 1.0),
        _f32(p + "mean", CLIP_MEAN, (1, 3, 1, 1)),
        _f32(p + "std", CLIP_STD, (1, 3, 1, 1)),
    ]
    nodes = [
        helper.make_node("Cast", [input_name], [p + "x_f"], name=p + "cast", to=TensorProto.FLOAT),
        helper.make_node("Transpose", [p + "x_f"], [p + "x_nchw"], name=p + "to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Div", [p + "x_nchw", p + "scale255"], [p + "x01"], name=p + "div255"),
        helper.make_node("Transpose", [p + "resize_w"], [p + "resize_wt"], name=p + "resize_wt", perm=[1, 0]),
        helper.make_node("MatMul", [p + "x01", p + "resize_wt"], [p + "h"], name=p + "resize_horizontal"),
        helper.make_node("Clip", [p + "h", p + "zero", p + "one"], [p + "hc"], name=p + "clip_horizontal"),
        helper.make_node("MatMul", [p + "resize_w", p + "hc"], [p + "v"], name=p + "resize_vertical"),
        helper.make_node("Clip", [p + "v", p + "zero", p + "one"], [p + "vc"], name=p + "clip_vertical"),
        helper.make_node("Sub", [p + "vc", p + "mean"], [p + "centred"], name=p + "sub_mean"),
        helper.make_node("Div", [p + "centred", p + "std"], [output_name], name=p + "div_std"),
    ]
    return nodes, inits


def tiny_head_subgraph(input_name, output_name, size=INPUT_SIZE, prefix="head/", width=None):
    """The tiny head (see module doc): float32 [N,3,size,width] -> [N,8] (width defaults to size)."""
    p = prefix
    width = width or size
    inits = [
        _i64(p + "c0", [0]), _i64(p + "c1", [1]), _i64(p + "c2", [2]),
        _i64(p + "h0", [0]), _i64(p + "hmid", [size // 2]), _i64(p + "hend", [size]),
        _i64(p + "wmid", [width // 2]), _i64(p + "wend", [width]),
        _i64(p + "axis1", [1]),
    ]
    n = helper.make_node
    nodes = [
        n("ReduceMean", [input_name], [p + "mean_c"], name=p + "mean_c", axes=[2, 3], keepdims=0),
        n("Mul", [input_name, input_name], [p + "sq"], name=p + "square"),
        n("ReduceMean", [p + "sq"], [p + "meansq_c"], name=p + "meansq_c", axes=[2, 3], keepdims=0),
        # channel 0 left / right halves: X[:, 0:1, :, 0:half] and X[:, 0:1, :, half:]
        n("Slice", [input_name, p + "c0", p + "c1", p + "axis1"], [p + "ch0"], name=p + "ch0"),
        n("Slice", [p + "ch0", p + "h0", p + "wmid", _axis(p, 3, inits)], [p + "left"], name=p + "left"),
        n("Slice", [p + "ch0", p + "wmid", p + "wend", _axis(p, 3, inits)], [p + "right"], name=p + "right"),
        n("ReduceMean", [p + "left"], [p + "left_m"], name=p + "left_m", axes=[1, 2, 3], keepdims=1),
        n("ReduceMean", [p + "right"], [p + "right_m"], name=p + "right_m", axes=[1, 2, 3], keepdims=1),
        n("Sub", [p + "left_m", p + "right_m"], [p + "lr4"], name=p + "left_minus_right"),
        # channel 1 top / bottom halves
        n("Slice", [input_name, p + "c1", p + "c2", p + "axis1"], [p + "ch1"], name=p + "ch1"),
        n("Slice", [p + "ch1", p + "h0", p + "hmid", _axis(p, 2, inits)], [p + "top"], name=p + "top"),
        n("Slice", [p + "ch1", p + "hmid", p + "hend", _axis(p, 2, inits)], [p + "bottom"], name=p + "bottom"),
        n("ReduceMean", [p + "top"], [p + "top_m"], name=p + "top_m", axes=[1, 2, 3], keepdims=1),
        n("ReduceMean", [p + "bottom"], [p + "bottom_m"], name=p + "bottom_m", axes=[1, 2, 3], keepdims=1),
        n("Sub", [p + "top_m", p + "bottom_m"], [p + "tb4"], name=p + "top_minus_bottom"),
        # [N,1,1,1] -> [N,1]
        n("Squeeze", [p + "lr4", p + "axes_cw_sq"], [p + "lr"], name=p + "squeeze_lr"),
        n("Squeeze", [p + "tb4", p + "axes_cw_sq"], [p + "tb"], name=p + "squeeze_tb"),
        n("Concat", [p + "mean_c", p + "meansq_c", p + "lr", p + "tb"], [output_name], name=p + "concat", axis=1),
    ]
    inits.append(_i64(p + "axes_cw_sq", [2, 3]))
    # drop the helper initialisers no node uses
    used = {i for nd in nodes for i in nd.input}
    inits = [t for t in inits if t.name in used]
    inits.sort(key=lambda t: t.name)
    return nodes, inits


def _axis(prefix, axis, inits):
    name = "%saxis%d" % (prefix, axis)
    if not any(t.name == name for t in inits):
        inits.append(_i64(name, [axis]))
    return name


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(graph_name, nodes, inits, inputs, outputs, doc=""):
    g = helper.make_graph(nodes, graph_name, inputs, outputs, initializer=inits, doc_string=doc)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name=PRODUCER, producer_version=PRODUCER_VERSION)
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def build_tiny_clip(graph_name="tiny_clip"):
    nodes, inits = tiny_head_subgraph("pixel_values", "image_embeds")
    return _model(graph_name, nodes, inits,
                  [_vi("pixel_values", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
                  [_vi("image_embeds", TensorProto.FLOAT, ["batch", TINY_DIM])])


def build_tiny_raw():
    pn, pi = preprocess_subgraph("patches", "pixel_values")
    hn, hi = tiny_head_subgraph("pixel_values", "image_embeds")
    return _model("tiny_raw", pn + hn, pi + hi,
                  [_vi("patches", TensorProto.UINT8, ["batch", PATCH_SIZE, PATCH_SIZE, 3])],
                  [_vi("image_embeds", TensorProto.FLOAT, ["batch", TINY_DIM])])


def build_bad_shape():
    # not [N,3,S,S] for any S (and not 224): the loader must refuse it
    nodes, inits = tiny_head_subgraph("pixel_values", "image_embeds", size=128, width=96)
    return _model("bad_shape", nodes, inits,
                  [_vi("pixel_values", TensorProto.FLOAT, ["batch", 3, 128, 96])],
                  [_vi("image_embeds", TensorProto.FLOAT, ["batch", TINY_DIM])])


def build_bad_io():
    nodes, inits = tiny_head_subgraph("pixel_values", "head_out")
    nodes.append(helper.make_node("Add", ["head_out", "extra"], ["image_embeds"], name="add_extra"))
    return _model("bad_io", nodes, inits,
                  [_vi("pixel_values", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE]),
                   _vi("extra", TensorProto.FLOAT, ["batch", 1])],
                  [_vi("image_embeds", TensorProto.FLOAT, ["batch", TINY_DIM])])


def tiny_head_numpy(x):
    """float64 reference of the tiny head, x [N,3,H,W] -> [N,8]."""
    x = x.astype(np.float64)
    hh, hw = x.shape[2] // 2, x.shape[3] // 2
    f = np.concatenate([
        x.mean(axis=(2, 3)),
        (x * x).mean(axis=(2, 3)),
        (x[:, 0, :, :hw].mean(axis=(1, 2)) - x[:, 0, :, hw:].mean(axis=(1, 2)))[:, None],
        (x[:, 1, :hh, :].mean(axis=(1, 2)) - x[:, 1, hh:, :].mean(axis=(1, 2)))[:, None],
    ], axis=1)
    return f


# ---------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(name, contract, dim, sha, source, precision="fp32", opset=OPSET):
    return {
        "name": name,
        "contract": contract,
        "input": "pixel_values" if contract == "clip-pixel-values" else "patches",
        "output": "image_embeds",
        "dim": int(dim),
        "input_size": INPUT_SIZE,
        "patch_size": PATCH_SIZE,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "sha256": sha,
        "source": source,
        "precision": precision,
        "opset": int(opset),
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save_model(model, path):
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


# ---------------------------------------------------------------------------
# a small numpy reference evaluator for ONNX graphs (no runtime needed)
# ---------------------------------------------------------------------------

_NP_TYPES = {
    TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
    TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8, TensorProto.INT32: np.int32,
    TensorProto.INT64: np.int64, TensorProto.BOOL: np.bool_,
}


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _mm(a, b):
    # float16 products accumulate in float32 (as GPU kernels do) and round once
    if a.dtype == np.float16 or b.dtype == np.float16:
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    return np.matmul(a, b)


def _conv(x, w, b, a):
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise NotImplementedError("Conv with groups/dilations")
    sh, sw = a.get("strides", [1, 1])
    pads = a.get("pads", [0, 0, 0, 0])
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    dt = x.dtype
    xf = x.astype(np.float32)
    xf = np.pad(xf, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    o, c, kh, kw = w.shape
    n, _, hh, ww = xf.shape
    oh, ow = (hh - kh) // sh + 1, (ww - kw) // sw + 1
    wf = w.astype(np.float32)
    out = np.zeros((n, o, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = xf[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]  # n,c,oh,ow
            out += np.einsum("ncij,oc->noij", patch, wf[:, :, i, j], optimize=True)
    if b is not None:
        out += b.astype(np.float32).reshape(1, -1, 1, 1)
    return out.astype(dt)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype)


def _reduce_axes(node, a, ins):
    axes = a.get("axes")
    if axes is None and len(ins) > 1 and ins[1] is not None:
        axes = [int(v) for v in ins[1]]
    return tuple(axes) if axes else None


def _run_node(node, ins, a):
    op = node.op_type
    x = ins[0] if ins else None
    if op == "Identity":
        return [x]
    if op == "Constant":
        if "value" in a:
            return [numpy_helper.to_array(a["value"])]
        for k, dt in (("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
            if k in a:
                return [np.array(a[k], dtype=dt)]
        raise NotImplementedError("Constant " + str(list(a)))
    if op == "Cast":
        return [x.astype(_NP_TYPES[a["to"]])]
    if op == "Shape":
        s = np.array(x.shape, dtype=np.int64)
        return [s[a.get("start", 0):a.get("end", len(s))]]
    if op == "Gather":
        return [np.take(x, ins[1].astype(np.int64), axis=a.get("axis", 0))]
    if op == "Unsqueeze":
        axes = a.get("axes") or [int(v) for v in ins[1]]
        r = x
        nd = x.ndim + len(axes)
        for ax in sorted(v % nd for v in axes):
            r = np.expand_dims(r, ax)
        return [r]
    if op == "Squeeze":
        axes = a.get("axes")
        if axes is None and len(ins) > 1:
            axes = [int(v) for v in ins[1]]
        return [np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)]
    if op == "Concat":
        return [np.concatenate(ins, axis=a["axis"])]
    if op == "Reshape":
        shape = [int(v) for v in ins[1]]
        if not a.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Flatten":
        ax = a.get("axis", 1)
        return [x.reshape(int(np.prod(x.shape[:ax])), -1)]
    if op == "Transpose":
        return [np.transpose(x, a.get("perm"))]
    if op == "Slice":
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        sl = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            sl[int(ax)] = slice(int(s), int(min(max(e, -2 ** 62), 2 ** 62)), int(st))
        return [x[tuple(sl)]]
    if op == "Expand":
        shape = [int(v) for v in ins[1]]
        return [x * np.ones(shape, dtype=x.dtype)]
    if op == "ConstantOfShape":
        v = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.full([int(s) for s in x], v.reshape(-1)[0], dtype=v.dtype)]
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "And", "Or"):
        y = ins[1]
        if op == "Add":
            r = x + y
        elif op == "Sub":
            r = x - y
        elif op == "Mul":
            r = x * y
        elif op == "Div":
            r = (np.trunc(x / y).astype(x.dtype) if np.issubdtype(x.dtype, np.integer) else x / y)
        elif op == "Pow":
            r = np.power(x, y)
        elif op == "Equal":
            r = x == y
        elif op == "Less":
            r = x < y
        elif op == "Greater":
            r = x > y
        elif op == "And":
            r = np.logical_and(x, y)
        else:
            r = np.logical_or(x, y)
        if r.dtype != np.bool_ and np.issubdtype(x.dtype, np.floating):
            r = r.astype(x.dtype)
        return [r]
    if op == "Where":
        return [np.where(ins[0], ins[1], ins[2])]
    if op == "Neg":
        return [-x]
    if op == "Sqrt":
        return [np.sqrt(x)]
    if op == "Reciprocal":
        return [(1 / x).astype(x.dtype)]
    if op == "Relu":
        return [np.maximum(x, 0).astype(x.dtype)]
    if op == "Sigmoid":
        return [(1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(x.dtype)]
    if op == "Tanh":
        return [np.tanh(x)]
    if op == "Erf":
        return [_erf(x)]
    if op == "Softmax":
        ax = a.get("axis", -1)
        xf = x.astype(np.float32)
        e = np.exp(xf - xf.max(axis=ax, keepdims=True))
        return [(e / e.sum(axis=ax, keepdims=True)).astype(x.dtype)]
    if op == "MatMul":
        return [_mm(x, ins[1])]
    if op == "Gemm":
        A = x.T if a.get("transA", 0) else x
        B = ins[1].T if a.get("transB", 0) else ins[1]
        r = a.get("alpha", 1.0) * _mm(A, B)
        if len(ins) > 2 and ins[2] is not None:
            r = r + a.get("beta", 1.0) * ins[2]
        return [r.astype(x.dtype)]
    if op == "Conv":
        return [_conv(x, ins[1], ins[2] if len(ins) > 2 else None, a)]
    if op in ("ReduceMean", "ReduceSum"):
        axes = _reduce_axes(node, a, ins)
        f = np.mean if op == "ReduceMean" else np.sum
        acc = np.float64 if np.issubdtype(x.dtype, np.floating) else None  # accurate sums
        return [f(x, axis=axes, keepdims=bool(a.get("keepdims", 1)), dtype=acc).astype(x.dtype)]
    if op == "GlobalAveragePool":
        return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]
    if op == "LayerNormalization":
        ax = a.get("axis", -1)
        eps = a.get("epsilon", 1e-5)
        xf = x.astype(np.float32)
        axes = tuple(range(ax % x.ndim, x.ndim))
        mu = xf.mean(axis=axes, keepdims=True)
        var = ((xf - mu) ** 2).mean(axis=axes, keepdims=True)
        y = (xf - mu) / np.sqrt(var + eps) * ins[1].astype(np.float32)
        if len(ins) > 2 and ins[2] is not None:
            y = y + ins[2].astype(np.float32)
        return [y.astype(x.dtype)]
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None and ins[1].size else a.get("min")
        hi = ins[2] if len(ins) > 2 and ins[2] is not None and ins[2].size else a.get("max")
        r = x
        if lo is not None:
            r = np.maximum(r, lo)
        if hi is not None:
            r = np.minimum(r, hi)
        return [r.astype(x.dtype)]
    if op == "Range":
        return [np.arange(ins[0], ins[1], ins[2])]
    raise NotImplementedError("reference evaluator: op %s not implemented" % op)


def run_reference(model, feeds):
    """Evaluate an ONNX ModelProto on numpy inputs with the reference evaluator above.
    Returns {output name: array}. Only for verification; slow but BLAS-backed."""
    g = model.graph
    env = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    env.update(feeds)
    refcount = {}
    for node in g.node:
        for i in node.input:
            refcount[i] = refcount.get(i, 0) + 1
    keep = {o.name for o in g.output}
    for node in g.node:
        ins = [env[i] if i else None for i in node.input]
        outs = _run_node(node, ins, _attrs(node))
        for name, val in zip(node.output, outs):
            if name:
                env[name] = np.asarray(val)
        for i in node.input:  # free intermediates early: the full ViT is big
            refcount[i] -= 1
            if refcount[i] == 0 and i not in keep and i in env and i not in feeds:
                del env[i]
    return {o.name: env[o.name] for o in g.output}


def try_onnxruntime(path, feeds):
    """Run with onnxruntime if importable; returns outputs dict or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def sample_patches(n, seed=0):
    """Test patches: noise, a smooth gradient with an oriented bar, and a near-white patch."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = i % 3
        if k == 0:
            p = rng.integers(0, 256, (PATCH_SIZE, PATCH_SIZE, 3), dtype=np.uint8)
        elif k == 1:
            yy, xx = np.mgrid[0:PATCH_SIZE, 0:PATCH_SIZE]
            p = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
            p[40:80, 10:200, 0] = 255
        else:
            p = np.clip(rng.normal(225, 18, (PATCH_SIZE, PATCH_SIZE, 3)), 0, 255).astype(np.uint8)
        out.append(p)
    return np.stack(out)


def generate(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    files = {}

    def put(model, base, man=None):
        path = os.path.join(out_dir, base + ".onnx")
        save_model(model, path)
        files[base + ".onnx"] = path
        if man is not None:
            man["sha256"] = sha256_file(path)
            jp = os.path.join(out_dir, base + ".json")
            write_json(jp, man)
            files[base + ".json"] = jp

    put(build_tiny_clip(), "tiny-clip",
        manifest("tiny-clip", "clip-pixel-values", TINY_DIM, "",
                 "her2wsi test model (scripts/make_test_encoders.py); " + HEAD_FORMULAS))
    put(build_tiny_raw(), "tiny-raw",
        manifest("tiny-raw", "raw-uint8", TINY_DIM, "",
                 "her2wsi test model (scripts/make_test_encoders.py); in-graph preprocessing: "
                 "x=uint8/255 (NCHW), x=clip(x@W^T,0,1), x=clip(W@x,0,1) with W the 224x256 "
                 "PIL BICUBIC matrix, x=(x-mean)/std; then " + HEAD_FORMULAS))
    put(build_tiny_clip("noname_clip"), "noname-clip")
    put(build_bad_shape(), "bad-shape")
    put(build_bad_io(), "bad-io")
    return files


def verify(out_dir):
    ok = True
    patches = sample_patches(6)
    x_pil = pil_preprocess(patches)
    x_raw = raw_preprocess_numpy(patches)

    clip_m = onnx.load(os.path.join(out_dir, "tiny-clip.onnx"))
    raw_m = onnx.load(os.path.join(out_dir, "tiny-raw.onnx"))
    for name in ("tiny-clip", "tiny-raw", "noname-clip", "bad-shape", "bad-io"):
        onnx.checker.check_model(onnx.load(os.path.join(out_dir, name + ".onnx")), full_check=True)
    for name in ("tiny-clip", "tiny-raw"):
        man = json.load(open(os.path.join(out_dir, name + ".json")))
        if man["sha256"] != sha256_file(os.path.join(out_dir, name + ".onnx")):
            print("FAIL %s.json sha256 does not match" % name)
            ok = False

    def check(label, got, want, tol):
        nonlocal ok
        d = float(np.abs(np.asarray(got, np.float64) - want).max())
        good = d <= tol
        ok &= good
        print("  %-58s max|diff| %.3g (tol %.3g) %s" % (label, d, tol, "ok" if good else "FAIL"))
        return d

    print("verification (numpy reference evaluator):")
    want_clip = tiny_head_numpy(x_pil)
    got_clip = run_reference(clip_m, {"pixel_values": x_pil})["image_embeds"]
    check("tiny-clip(pil_preprocess(p)) vs float64 formulas", got_clip, want_clip, 1e-5)
    got_raw = run_reference(raw_m, {"patches": patches})["image_embeds"]
    check("tiny-raw(p) vs formulas on numpy raw preprocessing", got_raw, tiny_head_numpy(x_raw), 1e-5)
    check("in-graph preprocessing vs PIL, per pixel (normalised)", x_raw, x_pil.astype(np.float64), 0.02)
    d = check("tiny-raw(p) vs tiny-clip(pil_preprocess(p)), all features", got_raw, want_clip, 2e-3)
    print("  per feature max|diff|:", np.array2string(np.abs(got_raw - want_clip).max(0), precision=2))
    # a batch of 1 and a transposed patch (orientation must change f[6], f[7])
    g1 = run_reference(clip_m, {"pixel_values": x_pil[1:2]})["image_embeds"]
    check("batch of 1 == row 1 of batch of 6", g1, got_clip[1:2].astype(np.float64), 1e-6)
    t = run_reference(clip_m, {"pixel_values": np.ascontiguousarray(x_pil[1:2].transpose(0, 1, 3, 2))})
    moved = float(np.abs(t["image_embeds"][0, 6:] - got_clip[1, 6:]).max())
    print("  transposed patch changes f[6:8] by %.3g %s" % (moved, "ok" if moved > 0.1 else "FAIL"))
    ok &= moved > 0.1

    bad = onnx.load(os.path.join(out_dir, "bad-shape.onnx"))
    xb = np.random.default_rng(2).normal(size=(2, 3, 128, 96)).astype(np.float32)
    check("bad-shape (runs; [N,3,128,96]) vs formulas", run_reference(bad, {"pixel_values": xb})["image_embeds"],
          tiny_head_numpy(xb), 1e-5)

    ort_out = try_onnxruntime(os.path.join(out_dir, "tiny-raw.onnx"), {"patches": patches})
    if ort_out is None:
        print("onnxruntime: not importable here -- runtime verification SKIPPED "
              "(the Go tests run these models in ONNX Runtime)")
    else:
        print("verification (onnxruntime):")
        check("ORT tiny-raw vs reference evaluator", ort_out["image_embeds"], got_raw.astype(np.float64), 1e-4)
        o = try_onnxruntime(os.path.join(out_dir, "tiny-clip.onnx"), {"pixel_values": x_pil})
        check("ORT tiny-clip vs formulas", o["image_embeds"], want_clip, 1e-4)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "features", "testdata", "encoders"))
    ap.add_argument("--check", action="store_true",
                    help="generate into a temporary folder and compare with --out-dir byte for byte")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out_dir)

    if args.check:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            files = generate(tmp)
            stale = [b for b, p in sorted(files.items())
                     if not os.path.exists(os.path.join(out_dir, b))
                     or sha256_file(p) != sha256_file(os.path.join(out_dir, b))]
        if stale:
            print("make_test_encoders: stale or missing in %s: %s (rerun without --check)" % (out_dir, ", ".join(stale)))
            return 1
        print("make_test_encoders: %s is up to date (%d files)" % (out_dir, len(files)))
        return 0

    files = generate(out_dir)
    for base, path in sorted(files.items()):
        print("%-18s %9d bytes  sha256 %s" % (base, os.path.getsize(path), sha256_file(path)))
    if args.no_verify:
        return 0
    if not verify(out_dir):
        print("make_test_encoders: verification FAILED")
        return 1
    print("make_test_encoders: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
