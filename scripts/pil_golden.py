#!/usr/bin/python3
"""Regenerate the PIL golden files for features/preprocess_test.go.

Writes deterministic test images and what Pillow's
Image.resize(..., resample=Image.BICUBIC) (the resize Hugging Face's
CLIPImageProcessor uses) makes of them into features/testdata/preprocess_*:

  preprocess_<name>_in.png        an input image
  preprocess_<name>_<W>x<H>.png   PIL's bicubic resize of it to W×H (an
                                  identity case names the input instead)
  preprocess_hf_norm.f32          Hugging Face's rescale+normalise of every
                                  uint8 value with CLIP's mean/std: float32
                                  little-endian [3][256]
  preprocess_cases.json           the list of cases and the Pillow version

Run it with Debian's Python (apt-get install python3-pil python3-numpy):

  /usr/bin/python3 scripts/pil_golden.py [OUTDIR]

or through `go test ./features -run PIL -update-preprocess`.
"""

import json
import os
import sys

import numpy as np
import PIL
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# name -> (width, height, seed) of the generated inputs.
INPUTS = {
    "main": (256, 256, 1),  # the embed stage's patch
    "wide": (300, 200, 2),
    "big": (512, 512, 3),
    "small": (100, 100, 4),
    "odd": (37, 23, 5),
    "tiny": (3, 2, 6),
    "dot": (1, 1, 7),
}

# (input name, output width, output height).
CASES = [
    ("main", 224, 224),  # PLIP: 256 -> 224
    ("main", 256, 256),  # identity (PIL copies)
    ("main", 224, 256),  # horizontal pass only
    ("main", 256, 200),  # vertical pass only
    ("main", 97, 301),  # down one way, up the other
    ("wide", 224, 224),
    ("big", 256, 256),  # 2:1
    ("small", 224, 224),  # upscaling
    ("odd", 5, 61),  # strong downscale (wide support), upscale
    ("odd", 224, 224),
    ("tiny", 7, 1),
    ("dot", 3, 2),
]


def make_image(w, h, seed):
    """Gradients, hard 0/255 edges (bicubic overshoot, so clipping), fine
    stripes, discs, and a block of full-range noise, all deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3), np.float64)
    img[..., 0] = 255 * x / max(w - 1, 1)
    img[..., 1] = 255 * y / max(h - 1, 1)
    img[..., 2] = 127.5 + 127.5 * np.sin((x + 2 * y) / max(w, h) * 9.0)
    # Hard-edged rectangles in black, white and saturated colours.
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(1, w // 3 + 2), y0 + rng.integers(1, h // 3 + 2)
        img[y0:y1, x0:x1] = rng.choice([0.0, 255.0], size=3)
    # Discs: H&E-ish pink and purple blobs.
    for _ in range(8):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.5, max(w, h) / 8 + 1)
        m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[m] = rng.choice([[230, 140, 190], [90, 40, 140], [255, 255, 255], [0, 0, 0]])
    # One-pixel and two-pixel black/white stripes.
    sx, sw = w // 8, max(w // 8, 1)
    img[: h // 2, sx : sx + sw] = (255 * ((x[: h // 2, sx : sx + sw].astype(int)) % 2))[..., None]
    sy, sh = h // 2, max(h // 8, 1)
    img[sy : sy + sh, : w // 2] = (255 * ((y[sy : sy + sh, : w // 2].astype(int) // 2) % 2))[..., None]
    # Full-range noise in one block.
    nw, nh = max(w // 5, 1), max(h // 5, 1)
    nx, ny = w - nw, h - nh
    img[ny:, nx:] = rng.integers(0, 256, size=(nh, nw, 3))
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def hf_normalise_table():
    """transformers' rescale (uint8 -> float64 * 1/255 -> float32) then
    normalize ((x - mean) / std in float32), for every uint8 value."""
    v = np.arange(256, dtype=np.uint8)
    x = (v.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(CLIP_MEAN, dtype=np.float32)
    std = np.array(CLIP_STD, dtype=np.float32)
    out = (x[:, None] - mean) / std  # [256, 3] float32
    return np.ascontiguousarray(out.T.astype("<f4"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "features", "testdata")
    os.makedirs(outdir, exist_ok=True)
    inputs = {}
    for name, (w, h, seed) in INPUTS.items():
        im = make_image(w, h, seed)
        im.save(os.path.join(outdir, f"preprocess_{name}_in.png"), optimize=True)
        inputs[name] = im
    cases = []
    for name, w, h in CASES:
        im = inputs[name]
        out = im.resize((w, h), resample=Image.BICUBIC)
        fn = f"preprocess_{name}_{w}x{h}.png"
        if out.size == im.size:
            # PIL copies: point the case at the input instead of a duplicate.
            assert out.tobytes() == im.tobytes()
            fn = f"preprocess_{name}_in.png"
        else:
            out.save(os.path.join(outdir, fn), optimize=True)
        cases.append({"input": f"preprocess_{name}_in.png", "output": fn, "w": w, "h": h})
    with open(os.path.join(outdir, "preprocess_hf_norm.f32"), "wb") as f:
        f.write(hf_normalise_table().tobytes())
    with open(os.path.join(outdir, "preprocess_cases.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "numpy": np.__version__,
                   "mean": CLIP_MEAN, "std": CLIP_STD, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
