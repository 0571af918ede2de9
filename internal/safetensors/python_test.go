package safetensors

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

const python = "/usr/bin/python3"

// pyReader reads a safetensors file by hand (json + struct + numpy) and prints
// {"metadata": {...}, "tensors": {name: {"dtype", "shape", "values"}}}.
const pyReader = `
import json, struct, sys
import numpy as np
NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
      "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
assert n % 8 == 0, "header not padded"
header = json.loads(data[8:8 + n])
buf = data[8 + n:]
meta = header.pop("__metadata__", None)
out = {"metadata": meta, "tensors": {}}
pos = 0
for name in sorted(header, key=lambda k: header[k]["data_offsets"]):
    info = header[name]
    b, e = info["data_offsets"]
    assert b == pos, "not contiguous"
    pos = e
    raw = buf[b:e]
    if info["dtype"] == "BF16":
        arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(raw, NP[info["dtype"]])
    arr = arr.reshape(info["shape"])
    vals = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64).ravel().tolist()
    out["tensors"][name] = {"dtype": info["dtype"], "shape": info["shape"], "values": vals}
assert pos == len(buf), "buffer not fully used"
print(json.dumps(out))
`

// pyWriter writes a safetensors file by hand, the way the Python library lays
// it out (compact JSON, space padding), and prints the values it wrote.
const pyWriter = `
import json, struct, sys
import numpy as np
arrs = {
    "w.f32": np.array([[1.5, -2.25, 3e-3], [1e30, -0.0, 7.0]], dtype="<f4"),
    "w.f16": np.array([1.0, -2.5, 65504.0, 6e-8, 0.333], dtype="<f2"),
    "w.f64": np.array([0.1, -1e-300], dtype="<f8"),
    "i.i64": np.array([[-(2**62), 5]], dtype="<i8"),
    "i.i32": np.array([-7, 2**31 - 1], dtype="<i4"),
    "i.u8": np.array([0, 255], dtype="u1"),
    "i.bool": np.array([True, False, True], dtype="?"),
    "s": np.array(3.5, dtype="<f4"),
}
bf = np.array([1.0, -2.5, 3.140625], dtype="<f4")
header, chunks, pos, vals = {}, [], 0, {}
for name in sorted(arrs):
    a = arrs[name]
    dt = {"f4": "F32", "f2": "F16", "f8": "F64", "i8": "I64", "i4": "I32", "u1": "U8", "b1": "BOOL"}[a.dtype.kind + str(a.dtype.itemsize)]
    raw = a.tobytes()
    header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [pos, pos + len(raw)]}
    chunks.append(raw)
    pos += len(raw)
    vals[name] = a.astype(np.float64 if a.dtype.kind == "f" else np.int64).ravel().tolist()
raw = (bf.view(np.uint32) >> 16).astype("<u2").tobytes()
header["z.bf16"] = {"dtype": "BF16", "shape": [3], "data_offsets": [pos, pos + len(raw)]}
chunks.append(raw)
vals["z.bf16"] = bf.astype(np.float64).tolist()
header["__metadata__"] = {"format": "np", "x": "y"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for c in chunks:
        f.write(c)
print(json.dumps(vals))
`

func needNumpy(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode")
	}
	if _, err := os.Stat(python); err != nil {
		t.Skip("no " + python)
	}
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3 has no numpy")
	}
}

func runPy(t *testing.T, script, arg string) []byte {
	t.Helper()
	cmd := exec.Command(python, "-c", script, arg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}

type pyTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int     `json:"shape"`
	Values []float64 `json:"values"` // the integers used here are exact in float64
}

func TestPythonReadsGoFile(t *testing.T) {
	needNumpy(t)
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{"format": "pt", "cfg": `{"a": 1}`}}
	fl := []float32{1, -2.5, 65504, 5.9604645e-08, 0.33325195, 1e-3, 0, -0.0}
	for _, dt := range []string{"F32", "F64", "F16", "BF16"} {
		tt, err := FromFloat32As(dt, []int{2, 4}, fl)
		if err != nil {
			t.Fatal(err)
		}
		f.Tensors["f."+dt] = tt
	}
	f.Tensors["i.I64"] = FromInt64([]int{3}, []int64{-(1 << 62), 0, 42})
	f.Tensors["i.I32"] = Tensor{DType: "I32", Shape: []int{2}, Data: []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80}}
	f.Tensors["i.I16"] = Tensor{DType: "I16", Shape: []int{1}, Data: []byte{0x00, 0x80}}
	f.Tensors["i.I8"] = Tensor{DType: "I8", Shape: []int{2}, Data: []byte{0x80, 0x7f}}
	f.Tensors["i.U8"] = Tensor{DType: "U8", Shape: []int{1, 1}, Data: []byte{200}}
	f.Tensors["i.BOOL"] = Tensor{DType: "BOOL", Shape: []int{2}, Data: []byte{1, 0}}
	f.Tensors["scalar"] = FromFloat32(nil, []float32{7})
	f.Tensors["empty"] = FromFloat32([]int{0, 3}, nil)
	path := filepath.Join(t.TempDir(), "go.safetensors")
	if err := Write(path, f); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Metadata map[string]string   `json:"metadata"`
		Tensors  map[string]pyTensor `json:"tensors"`
	}
	if err := json.Unmarshal(runPy(t, pyReader, path), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata) != 2 || got.Metadata["cfg"] != `{"a": 1}` || got.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", got.Metadata)
	}
	if len(got.Tensors) != len(f.Tensors) {
		t.Fatalf("python saw %d tensors, want %d", len(got.Tensors), len(f.Tensors))
	}
	for name, tt := range f.Tensors {
		p := got.Tensors[name]
		if p.DType != tt.DType || !slices.Equal(p.Shape, tt.Shape) {
			t.Errorf("%s: python %s %v, go %s %v", name, p.DType, p.Shape, tt.DType, tt.Shape)
		}
		var want []float64
		if v, err := tt.Float32(); err == nil {
			for _, x := range v {
				want = append(want, float64(x))
			}
		} else if v, err := tt.Int64(); err == nil {
			for _, x := range v {
				want = append(want, float64(x))
			}
		}
		if !slices.Equal(p.Values, want) && !(len(p.Values) == 0 && len(want) == 0) {
			t.Errorf("%s: python %v, go %v", name, p.Values, want)
		}
	}
}

func TestGoReadsPythonFile(t *testing.T) {
	needNumpy(t)
	path := filepath.Join(t.TempDir(), "py.safetensors")
	var want map[string][]float64
	if err := json.Unmarshal(runPy(t, pyWriter, path), &want); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "np" || f.Metadata["x"] != "y" || len(f.Metadata) != 2 {
		t.Errorf("metadata %v", f.Metadata)
	}
	if len(f.Tensors) != len(want) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(want))
	}
	for name, w := range want {
		tt, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("missing %s", name)
		}
		var got []float64
		if v, err := tt.Float32(); err == nil {
			for _, x := range v {
				got = append(got, float64(x))
			}
			if tt.DType == "F64" { // float32 rounds; compare at float32 precision
				for i := range w {
					w[i] = float64(float32(w[i]))
				}
			}
		} else if v, err := tt.Int64(); err == nil {
			for _, x := range v {
				got = append(got, float64(x))
			}
		} else {
			t.Fatalf("%s: %s converts to nothing", name, tt.DType)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s (%s): go %v, python %v", name, tt.DType, got, w)
		}
	}
	if s := f.Tensors["s"]; len(s.Shape) != 0 || s.NumElements() != 1 {
		t.Errorf("scalar shape %v", s.Shape)
	}
	if s := f.Tensors["i.i64"].Shape; !slices.Equal(s, []int{1, 2}) {
		t.Errorf("i.i64 shape %v", s)
	}
	// Go re-encodes the Python file to identical bytes except for the
	// metadata position (Python's json.dumps keeps insertion order, so
	// __metadata__ comes last there), hence compare parsed contents.
	m, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f, g)
}
