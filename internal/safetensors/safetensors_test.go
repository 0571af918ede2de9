package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// build returns a file with the given header (unpadded) and data.
func build(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestMarshalExactBytes(t *testing.T) {
	f := &File{
		Tensors: map[string]Tensor{
			"b": FromInt64([]int{2}, []int64{1, -1}),
			"a": FromFloat32(nil, []float32{1.5}),
		},
		Metadata: map[string]string{"k": "v"},
	}
	got, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// 132 bytes of JSON + 4 spaces = 136 = 0x88.
	want := []byte{0x88, 0, 0, 0, 0, 0, 0, 0}
	want = append(want, `{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[2],"data_offsets":[4,20]}}    `...)
	want = append(want, 0x00, 0x00, 0xc0, 0x3f) // 1.5f
	want = append(want, 1, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal:\n got %q\nwant %q", got, want)
	}
	var buf bytes.Buffer
	n, err := f.WriteTo(&buf)
	if err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteTo: n=%d err=%v, bytes equal=%v", n, err, bytes.Equal(buf.Bytes(), want))
	}
	// Deterministic across calls (map iteration order varies).
	for range 20 {
		again, _ := f.Marshal()
		if !bytes.Equal(again, want) {
			t.Fatal("Marshal is not deterministic")
		}
	}
}

func TestMarshalEmptyAndEscapes(t *testing.T) {
	got, err := (&File{}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{8, 0, 0, 0, 0, 0, 0, 0}, "{}      "...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	f := &File{
		Tensors:  map[string]Tensor{"a<b>&\"\\\n\u00e9": FromFloat32([]int{0}, nil)},
		Metadata: map[string]string{"x": "{\"json\": [1, 2]}"},
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"a<b>&\"\\\n`+"\u00e9"+`"`)) {
		t.Errorf("name not encoded as expected: %q", b)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f, g)
}

func TestParsePythonStyle(t *testing.T) {
	// As Python's safetensors writes it: compact JSON, space padding to 8.
	hdr := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` // 54 bytes
	b := []byte{56, 0, 0, 0, 0, 0, 0, 0}
	b = append(b, hdr+"  "...)
	b = append(b, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0) // 1, -2
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata = %v, want nil", f.Metadata)
	}
	if !slices.Equal(f.Names(), []string{"a"}) {
		t.Fatalf("names %v", f.Names())
	}
	a := f.Tensors["a"]
	if a.DType != "F32" || !slices.Equal(a.Shape, []int{2}) || a.NumElements() != 2 {
		t.Fatalf("tensor %+v", a)
	}
	v, err := a.Float32()
	if err != nil || !slices.Equal(v, []float32{1, -2}) {
		t.Fatalf("values %v %v", v, err)
	}
	if _, err := a.Int64(); err == nil {
		t.Error("Int64 of F32 should fail")
	}
	// Marshal reproduces the same bytes.
	m, err := f.Marshal()
	if err != nil || !bytes.Equal(m, b) {
		t.Fatalf("re-marshal differs: %q vs %q (%v)", m, b, err)
	}
	// Unpadded headers and whitespace in the JSON are accepted too.
	b2 := build(" {\"a\" : {\"shape\": [ 2 ], \"data_offsets\":[0, 8], \"dtype\":\"F32\"}, \"__metadata__\": {\"format\":\"pt\"}}\n\t", b[64:])
	f2, err := Parse(b2)
	if err != nil {
		t.Fatal(err)
	}
	if f2.Metadata["format"] != "pt" || !bytes.Equal(f2.Tensors["a"].Data, b[64:]) {
		t.Fatalf("got %+v", f2)
	}
	// "__metadata__": null means no metadata.
	f3, err := Parse(build(`{"__metadata__":null}`, nil))
	if err != nil || f3.Metadata != nil || len(f3.Tensors) != 0 {
		t.Fatalf("null metadata: %+v %v", f3, err)
	}
}

func allDTypesFile() *File {
	r := rand.New(rand.NewPCG(1, 2))
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{"format": "pt", "note": "ünïcode"}}
	shapes := [][]int{{}, {3}, {2, 3}, {2, 0, 4}, {1, 2, 1, 3}}
	i := 0
	for dt, size := range dtypeSizes {
		for _, s := range shapes {
			n, _ := numElements(s)
			d := make([]byte, n*size)
			for j := range d {
				d[j] = byte(r.Uint32())
			}
			if dt == "BOOL" {
				for j := range d {
					d[j] &= 1
				}
			}
			f.Tensors[dt+"/"+string(rune('a'+i%26))] = Tensor{DType: dt, Shape: slices.Clone(s), Data: d}
			i++
		}
	}
	return f
}

func assertSame(t *testing.T, want, got *File) {
	t.Helper()
	if !slices.Equal(want.Names(), got.Names()) {
		t.Fatalf("names %v, want %v", got.Names(), want.Names())
	}
	for name, w := range want.Tensors {
		g := got.Tensors[name]
		if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("tensor %q: got %s %v %d bytes, want %s %v %d bytes", name, g.DType, g.Shape, len(g.Data), w.DType, w.Shape, len(w.Data))
		}
	}
	if len(want.Metadata) != len(got.Metadata) || (len(want.Metadata) > 0 && !reflect.DeepEqual(want.Metadata, got.Metadata)) {
		t.Fatalf("metadata %v, want %v", got.Metadata, want.Metadata)
	}
}

func TestRoundTripAllDTypes(t *testing.T) {
	f := allDTypesFile()
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(b); n%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", n)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f, g)
	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := Write(path, f); err != nil {
		t.Fatal(err)
	}
	h, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f, h)
	disk, _ := os.ReadFile(path)
	if !bytes.Equal(disk, b) {
		t.Error("Write and Marshal differ")
	}
	// Parsed data must not be appendable into a neighbour.
	for _, tt := range g.Tensors {
		if cap(tt.Data) != len(tt.Data) {
			t.Fatal("parsed Data capacity not clipped")
		}
	}
}

func TestConversions(t *testing.T) {
	le16 := func(v ...uint16) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, x)
		}
		return b
	}
	vals := []float32{1, -2.5, 0, 3.25}
	for _, dt := range []string{"F32", "F64", "F16", "BF16"} {
		tt, err := FromFloat32As(dt, []int{2, 2}, vals)
		if err != nil {
			t.Fatal(err)
		}
		if len(tt.Data) != 4*DTypeSize(dt) {
			t.Fatalf("%s: %d bytes", dt, len(tt.Data))
		}
		got, err := tt.Float32()
		if err != nil || !slices.Equal(got, vals) {
			t.Errorf("%s: %v %v", dt, got, err)
		}
	}
	if _, err := FromFloat32As("I32", []int{1}, []float32{1}); err == nil {
		t.Error("FromFloat32As I32 should fail")
	}
	if _, err := FromFloat32As("F16", []int{2}, []float32{1}); err == nil {
		t.Error("FromFloat32As with a length mismatch should fail")
	}
	ints := []struct {
		dt   string
		data []byte
		want []int64
	}{
		{"I64", binary.LittleEndian.AppendUint64(nil, 1<<63), []int64{math.MinInt64}},
		{"I32", []byte{0xfe, 0xff, 0xff, 0xff, 5, 0, 0, 0}, []int64{-2, 5}},
		{"I16", le16(0x8000, 7), []int64{-32768, 7}},
		{"I8", []byte{0x80, 0x7f}, []int64{-128, 127}},
		{"U8", []byte{0xff, 1}, []int64{255, 1}},
		{"U16", le16(0xffff), []int64{65535}},
		{"U32", []byte{0xff, 0xff, 0xff, 0xff}, []int64{1<<32 - 1}},
		{"U64", binary.LittleEndian.AppendUint64(nil, 1<<63-1), []int64{math.MaxInt64}},
		{"BOOL", []byte{0, 1}, []int64{0, 1}},
	}
	for _, c := range ints {
		tt := Tensor{DType: c.dt, Shape: []int{len(c.want)}, Data: c.data}
		got, err := tt.Int64()
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.dt, got, err, c.want)
		}
		if _, err := tt.Float32(); err == nil {
			t.Errorf("Float32 of %s should fail", c.dt)
		}
	}
	if _, err := (Tensor{DType: "U64", Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, 1<<63)}).Int64(); err == nil {
		t.Error("U64 overflow should fail")
	}
	iv := FromInt64([]int{3}, []int64{-5, 0, 1 << 40})
	if got, _ := iv.Int64(); !slices.Equal(got, []int64{-5, 0, 1 << 40}) {
		t.Errorf("FromInt64 round trip: %v", got)
	}
	bad := Tensor{DType: "F32", Shape: []int{2}, Data: make([]byte, 4)}
	if _, err := bad.Float32(); err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") {
		t.Errorf("length mismatch: %v", err)
	}
	if err := bad.Validate(); err == nil {
		t.Error("Validate should fail")
	}
	if n := (Tensor{Shape: []int{2, -1}}).NumElements(); n != -1 {
		t.Errorf("NumElements negative = %d", n)
	}
	if n := (Tensor{Shape: []int{1 << 40, 1 << 40}}).NumElements(); n != -1 {
		t.Errorf("NumElements overflow = %d", n)
	}
	if n := (Tensor{}).NumElements(); n != 1 {
		t.Errorf("scalar NumElements = %d", n)
	}
}

func TestFromPanics(t *testing.T) {
	for _, fn := range []func(){
		func() { FromFloat32([]int{2}, []float32{1}) },
		func() { FromInt64([]int{2, 2}, []int64{1, 2, 3}) },
		func() { FromFloat32([]int{-1}, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn()
		}()
	}
	// The shape is copied.
	s := []int{2}
	tt := FromFloat32(s, []float32{1, 2})
	s[0] = 9
	if tt.Shape[0] != 2 {
		t.Error("shape aliased")
	}
}

func TestFloat16Known(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1},
		{0xc100, -2.5},
		{0x7bff, 65504},
		{0x0001, float32(math.Ldexp(1, -24))},          // smallest subnormal
		{0x03ff, float32(math.Ldexp(1023, -24))},       // largest subnormal
		{0x0400, float32(math.Ldexp(1, -14))},          // smallest normal
		{0x8001, -float32(math.Ldexp(1, -24))},         // negative subnormal
		{0x3555, float32(math.Ldexp(1024+0x155, -12))}, // 0.333252
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
		{0x0000, 0},
	}
	for _, c := range cases {
		got := Float16ToFloat32(c.bits)
		if math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("F16 %#04x -> %g, want %g", c.bits, got, c.want)
		}
		if back := Float32ToFloat16(got); back != c.bits {
			t.Errorf("F16 %g -> %#04x, want %#04x", got, back, c.bits)
		}
	}
	if got := Float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("-0 -> %g", got)
	}
	for _, nan := range []uint16{0x7e00, 0x7c01, 0xfe00} {
		if got := Float16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("%#04x -> %g, want NaN", nan, got)
		}
	}
	if h := Float32ToFloat16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN -> %#04x", h)
	}
	// Rounding to nearest even.
	rounding := []struct {
		in   float64
		want uint16
	}{
		{65519, 0x7bff},
		{65520, 0x7c00}, // halfway to the next (overflowing) value → Inf
		{1e6, 0x7c00},
		{-1e6, 0xfc00},
		{math.Ldexp(1, -25), 0x0000},            // half the smallest subnormal: ties to even (0)
		{math.Ldexp(1.0000001, -25), 0x0001},    // just above half
		{math.Ldexp(3, -25), 0x0002},            // 1.5 units: ties to even (2)
		{math.Ldexp(5, -25), 0x0002},            // 2.5 units: ties to even (2)
		{math.Ldexp(1, -26), 0x0000},            // quarter unit
		{math.Ldexp(2047, -25), 0x0400},         // rounds up into the smallest normal
		{1 + math.Ldexp(1, -11), 0x3c00},        // tie between 1 and 1+2^-10 → 1
		{1 + math.Ldexp(3, -11), 0x3c02},        // tie → even mantissa 2
		{1 + math.Ldexp(1, -11) + 1e-7, 0x3c01}, // above the tie
		{math.Ldexp(1, -149), 0},                // float32 subnormal
		{-math.Ldexp(1, -149), 0x8000},
	}
	for _, c := range rounding {
		if got := Float32ToFloat16(float32(c.in)); got != c.want {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func TestBFloat16Known(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3f80, 1},
		{0xc020, -2.5},
		{0x4780, 65536}, // 65504 is not representable in bfloat16
		{0x7f7f, float32(math.Ldexp(255, 127-7))},
		{0x0001, float32(math.Ldexp(1, -133))}, // smallest subnormal
		{0x0080, float32(math.Ldexp(1, -126))}, // smallest normal
		{0x7f80, float32(math.Inf(1))},
		{0xff80, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		got := BFloat16ToFloat32(c.bits)
		if math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("BF16 %#04x -> %g, want %g", c.bits, got, c.want)
		}
		if back := Float32ToBFloat16(got); back != c.bits {
			t.Errorf("BF16 %g -> %#04x, want %#04x", got, back, c.bits)
		}
	}
	if got := Float32ToBFloat16(65504); got != 0x4780 {
		t.Errorf("BF16(65504) = %#04x, want 0x4780", got)
	}
	if got := Float32ToBFloat16(math.Float32frombits(0x3f808000)); got != 0x3f80 { // tie → even
		t.Errorf("tie: %#04x", got)
	}
	if got := Float32ToBFloat16(math.Float32frombits(0x3f818000)); got != 0x3f82 { // tie → even
		t.Errorf("tie: %#04x", got)
	}
	if got := Float32ToBFloat16(math.MaxFloat32); got != 0x7f80 {
		t.Errorf("overflow: %#04x", got)
	}
	for _, nan := range []uint16{0x7fc0, 0x7f81, 0xffc0} {
		if got := BFloat16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("%#04x -> %g, want NaN", nan, got)
		}
	}
	// A NaN whose payload lies only in the low bits must stay NaN.
	if got := Float32ToBFloat16(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("NaN -> %#04x", got)
	}
}

// Every half-precision value survives half → float32 → half.
func TestHalfExhaustive(t *testing.T) {
	all := Tensor{DType: "F16", Shape: []int{1 << 16}, Data: make([]byte, 2<<16)}
	for i := range 1 << 16 {
		binary.LittleEndian.PutUint16(all.Data[2*i:], uint16(i))
	}
	bulk, err := all.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range bulk {
		if math.Float32bits(f) != math.Float32bits(Float16ToFloat32(uint16(i))) {
			t.Fatalf("Tensor.Float32 of F16 %#04x = %g, want %g", i, f, Float16ToFloat32(uint16(i)))
		}
	}
	for i := range 1 << 16 {
		h := uint16(i)
		f := Float16ToFloat32(h)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		if isNaN != math.IsNaN(float64(f)) {
			t.Fatalf("F16 %#04x -> %g", h, f)
		}
		if back := Float32ToFloat16(f); !isNaN && back != h || isNaN && back|0x200 != h|0x200 {
			t.Fatalf("F16 %#04x -> %g -> %#04x", h, f, back)
		}
		// The float32 value is exactly what the binary16 formula gives.
		if !isNaN && h&0x7c00 != 0x7c00 {
			e := int(h>>10) & 0x1f
			m := float64(h & 0x3ff)
			var v float64
			if e == 0 {
				v = math.Ldexp(m, -24)
			} else {
				v = math.Ldexp(1+m/1024, e-15)
			}
			if h&0x8000 != 0 {
				v = -v
			}
			if float64(f) != v {
				t.Fatalf("F16 %#04x -> %g, want %g", h, f, v)
			}
		}
		b := BFloat16ToFloat32(h)
		bNaN := h&0x7f80 == 0x7f80 && h&0x7f != 0
		if back := Float32ToBFloat16(b); !bNaN && back != h || bNaN && back|0x40 != h|0x40 {
			t.Fatalf("BF16 %#04x -> %g -> %#04x", h, b, back)
		}
	}
}

// Float32ToFloat16 picks the nearest half (ties to even) for random inputs.
func TestFloat16RoundingRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) {
			continue
		}
		if r.IntN(2) == 0 { // concentrate on the binary16 range
			f = float32(math.Ldexp(r.Float64()*2-1, r.IntN(45)-28))
		}
		h := Float32ToFloat16(f)
		got := float64(Float16ToFloat32(h))
		x := float64(f)
		// Check against the neighbours of h.
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7fff > 0x7c00 || (nb^h)&0x8000 != 0 {
				continue
			}
			alt := float64(Float16ToFloat32(nb))
			if math.IsInf(alt, 0) {
				alt = math.Copysign(65536, alt) // Inf sits where 2^16 would be
			}
			g := got
			if math.IsInf(g, 0) {
				g = math.Copysign(65536, g)
			}
			dg, da := math.Abs(x-g), math.Abs(x-alt)
			if da < dg || (da == dg && h&1 == 1) {
				t.Fatalf("Float32ToFloat16(%g) = %#04x (%g), but %#04x (%g) is nearer", f, h, got, nb, alt)
			}
		}
		if x != 0 && h&0x7fff == 0 && math.Abs(x) > math.Ldexp(1, -25) {
			t.Fatalf("Float32ToFloat16(%g) flushed to zero", f)
		}
	}
}

func TestParseErrors(t *testing.T) {
	f32x2 := make([]byte, 8)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "file too short"},
		{"short", []byte{1, 2, 3}, "file too short"},
		{"header beyond file", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "header length 100 exceeds the file size"},
		{"huge header", append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...), "exceeds the limit"},
		{"max uint64 header", append(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "{}"...), "exceeds the limit"},
		{"empty header", build("", nil), "invalid JSON in header: unexpected end"},
		{"truncated JSON", build(`{"a":`, nil), "invalid JSON in header"},
		{"bad JSON", build(`{"a" 1}`, nil), "invalid JSON in header"},
		{"trailing comma", build(`{"__metadata__":{},}`, nil), "invalid JSON in header"},
		{"trailing garbage", build(`{} x`, nil), "unexpected data after the object"},
		{"two objects", build(`{}{}`, nil), "unexpected data after the object"},
		{"invalid UTF-8", build("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"not an object", build(`[]`, nil), "header is not a JSON object"},
		{"string header", build(`"x"`, nil), "header is not a JSON object"},
		{"entry not object", build(`{"a":5}`, nil), `tensor "a" is not a JSON object`},
		{"unknown dtype", build(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), `tensor "a": unknown dtype "F8"`},
		{"lowercase dtype", build(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "f32"`},
		{"dtype not string", build(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "dtype is not a string"},
		{"missing dtype", build(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `missing field "dtype"`},
		{"missing shape", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), `missing field "shape"`},
		{"missing offsets", build(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), `missing field "data_offsets"`},
		{"unknown field", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), `unknown field "x"`},
		{"duplicate field", build(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `duplicate field "dtype"`},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), "negative dimension -1"},
		{"fractional dim", build(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)), "value 1.5 at index 0 is not an integer"},
		{"exponent dim", build(`{"a":{"dtype":"F32","shape":[1e2],"data_offsets":[0,400]}}`, make([]byte, 400)), "is not an integer"},
		{"string dim", build(`{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}`, make([]byte, 4)), "is not an integer"},
		{"dim out of range", build(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, make([]byte, 4)), "out of range"},
		{"shape overflow", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), "overflows int"},
		{"shape overflow then zero", build(`{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, nil), "overflows int"},
		{"byte size overflow", build(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}`, make([]byte, 4)), "overflows int bytes"},
		{"shape not array", build(`{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, f32x2), "shape: not a JSON array"},
		{"shape null", build(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, f32x2), "shape: not a JSON array"},
		{"offsets one value", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, f32x2), "data_offsets has 1 values, want 2"},
		{"offsets three values", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, f32x2), "data_offsets has 3 values"},
		{"offsets not array", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":{}}}`, f32x2), "data_offsets: not a JSON array"},
		{"negative offsets", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}}`, nil), "negative data_offsets"},
		{"reversed offsets", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, f32x2), "end before they begin"},
		{"offsets beyond buffer", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "exceed the data buffer of 4 bytes"},
		{"offsets size mismatch", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "span 4 bytes, but shape [2] of F32 needs 8"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32x2), `tensor "b" data [4, 8) overlaps`},
		{"same region", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32x2), "overlaps"},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), `gap in data buffer: bytes [4, 8) before tensor "b"`},
		{"leading gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32x2), "gap in data buffer: bytes [0, 4)"},
		{"trailing bytes", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32x2), "bytes [4, 8) at the end belong to no tensor"},
		{"data without tensors", build(`{}`, []byte{1}), "bytes [0, 1) at the end"},
		{"duplicate name", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}), `duplicate tensor name "a"`},
		{"duplicate escaped name", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\u0061":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}), `duplicate tensor name "a"`},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{}}`, nil), "duplicate __metadata__"},
		{"metadata not object", build(`{"__metadata__":[]}`, nil), "__metadata__ is not a JSON object"},
		{"metadata string", build(`{"__metadata__":"x"}`, nil), "__metadata__ is not a JSON object"},
		{"metadata number value", build(`{"__metadata__":{"k":1}}`, nil), `__metadata__ value for key "k" is not a string`},
		{"metadata null value", build(`{"__metadata__":{"k":null}}`, nil), `__metadata__ value for key "k" is not a string`},
		{"metadata object value", build(`{"__metadata__":{"k":{"a":"b"}}}`, nil), `__metadata__ value for key "k" is not a string`},
		{"metadata duplicate key", build(`{"__metadata__":{"k":"a","k":"b"}}`, nil), `duplicate __metadata__ key "k"`},
		{"newline in name", build("{\"a\\nb\":5}", nil), `tensor "a\nb" is not a JSON object`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.b)
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "safetensors: ") || strings.Count(msg, "safetensors:") != 1 {
				t.Errorf("bad prefix: %q", msg)
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("multi-line error: %q", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not contain %q", msg, c.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty header object", build(`{}`, nil)},
		{"zero-size tensors", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"c":{"dtype":"I64","shape":[3,0],"data_offsets":[2,2]}}`, []byte{1, 2})},
		{"out of order offsets", build(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2})},
		{"negative zero dim", build(`{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}`, nil)},
		{"empty metadata", build(`{"__metadata__":{}}`, nil)},
	}
	for _, c := range cases {
		if _, err := Parse(c.b); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	f, _ := Parse(cases[2].b)
	if a, b := f.Tensors["a"].Data, f.Tensors["b"].Data; a[0] != 1 || b[0] != 2 {
		t.Errorf("data mapped wrongly: a=%v b=%v", a, b)
	}
}

func TestMarshalErrors(t *testing.T) {
	cases := []struct {
		name string
		f    *File
		want string
	}{
		{"bad length", &File{Tensors: map[string]Tensor{"a": {DType: "F32", Shape: []int{2}, Data: make([]byte, 4)}}}, `tensor "a": data has 4 bytes, but shape [2] of F32 needs 8`},
		{"unknown dtype", &File{Tensors: map[string]Tensor{"a": {DType: "X", Shape: []int{}}}}, `tensor "a": unknown dtype "X"`},
		{"negative dim", &File{Tensors: map[string]Tensor{"a": {DType: "U8", Shape: []int{-1}}}}, "negative dimension"},
		{"reserved name", &File{Tensors: map[string]Tensor{"__metadata__": FromFloat32([]int{1}, []float32{1})}}, "reserved"},
		{"bad UTF-8 name", &File{Tensors: map[string]Tensor{"\xff": FromFloat32([]int{1}, []float32{1})}}, "not valid UTF-8"},
		{"bad UTF-8 metadata", &File{Metadata: map[string]string{"k": "\xff"}}, "not valid UTF-8"},
		{"nil file", nil, "nil *File"},
	}
	for _, c := range cases {
		_, err := c.f.Marshal()
		if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if _, err := c.f.WriteTo(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: WriteTo succeeded", c.name)
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.st")
	_, err := Read(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "safetensors: ") ||
		!strings.Contains(err.Error(), missing) || strings.Count(err.Error(), "safetensors:") != 1 {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.st")
	os.WriteFile(bad, []byte{1, 2, 3}, 0o644)
	_, err = Read(bad)
	if err == nil || err.Error() != "safetensors: "+bad+": file too short: 3 bytes, need at least 8 for the header length" {
		t.Errorf("bad file: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.st")
	f1 := &File{Tensors: map[string]Tensor{"x": FromFloat32([]int{2}, []float32{1, 2})}}
	f2 := &File{Tensors: map[string]Tensor{"y": FromInt64([]int{1}, []int64{7})}, Metadata: map[string]string{"a": "b"}}
	if err := Write(path, f1); err != nil {
		t.Fatal(err)
	}
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"w.st"}) {
		t.Fatalf("dir after write: %v", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm()&0o600 != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := Write(path, f2); err != nil {
		t.Fatal(err)
	}
	g, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f2, g)
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"w.st"}) {
		t.Fatalf("dir after overwrite: %v", got)
	}
	old, _ := os.ReadFile(path)

	// A failure before writing (invalid tensor) leaves the old file.
	badF := &File{Tensors: map[string]Tensor{"z": {DType: "F32", Shape: []int{3}, Data: make([]byte, 4)}}}
	err = Write(path, badF)
	if err == nil || !strings.HasPrefix(err.Error(), "safetensors: "+path+": ") || strings.Count(err.Error(), "safetensors:") != 1 {
		t.Fatalf("Write invalid: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Fatal("old file changed by a failed Write")
	}
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"w.st"}) {
		t.Fatalf("dir after failed write: %v", got)
	}

	// A failure after the temporary file was written (rename onto a non-empty
	// directory) removes the temporary file and leaves the target alone.
	target := filepath.Join(dir, "sub")
	os.Mkdir(target, 0o755)
	os.WriteFile(filepath.Join(target, "keep"), []byte("k"), 0o644)
	err = Write(target, f1)
	if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || strings.Count(err.Error(), "safetensors:") != 1 {
		t.Fatalf("Write onto a directory: %v", err)
	}
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"sub", "w.st"}) {
		t.Fatalf("dir after failed rename: %v", got)
	}
	if got := testutil.DirNames(t, target); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("target dir changed: %v", got)
	}

	// A directory that does not exist.
	err = Write(filepath.Join(dir, "nope", "x.safetensors"), f1)
	if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Write into missing dir: %v", err)
	}
}

func TestWriteReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "r.safetensors")
	f := &File{Tensors: map[string]Tensor{"x": FromFloat32([]int{1}, []float32{1})}}
	if err := Write(path, f); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	f.Tensors["x"] = FromFloat32([]int{1}, []float32{2})
	if err := Write(path, f); err == nil {
		t.Fatal("Write into read-only dir succeeded")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Fatal("old file changed")
	}
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"r.safetensors"}) {
		t.Fatalf("dir: %v", got)
	}
}
