// Package safetensors reads and writes the safetensors tensor file format
// (https://huggingface.co/docs/safetensors).
//
// A file is an 8-byte little-endian uint64 header length N, N bytes of JSON
// header, and a byte buffer. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// buffer start) and may hold "__metadata__", a string→string map. Tensor data
// are little-endian and row-major; the buffer must be covered by the tensors
// exactly, without gaps or overlaps.
//
// Every error returned by this package is one line starting with
// "safetensors: ".
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Supported dtypes and their element sizes in bytes.
var dtypeSizes = map[string]int{
	"F64":  8,
	"F32":  4,
	"F16":  2,
	"BF16": 2,
	"I64":  8,
	"I32":  4,
	"I16":  2,
	"I8":   1,
	"U64":  8,
	"U32":  4,
	"U16":  2,
	"U8":   1,
	"BOOL": 1,
}

// DTypeSize returns the size in bytes of one element of dtype, or 0 when the
// dtype is not supported. Supported: F64, F32, F16, BF16, I64, I32, I16, I8,
// U64, U32, U16, U8, BOOL.
func DTypeSize(dtype string) int { return dtypeSizes[dtype] }

// Tensor is one named array of a file.
type Tensor struct {
	DType string // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", ...
	Shape []int  // empty for a scalar
	Data  []byte // little-endian raw bytes, len = NumElements()*DTypeSize(DType)
}

// NumElements returns the product of the shape (1 for a scalar), or -1 when
// a dimension is negative or the product overflows int.
func (t Tensor) NumElements() int {
	n, err := numElements(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// numElements multiplies the dimensions, failing on negative ones and on
// overflow of int (also when a later dimension is zero).
func numElements(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d at index %d of shape %v", d, i, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v overflows int", shape)
		}
		n *= d
	}
	return n, nil
}

// byteLen returns the number of data bytes a tensor of dtype and shape needs.
func byteLen(dtype string, shape []int) (int, error) {
	size := DTypeSize(dtype)
	if size == 0 {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	n, err := numElements(shape)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt/size {
		return 0, fmt.Errorf("shape %v of %s overflows int bytes", shape, dtype)
	}
	return n * size, nil
}

// check validates dtype, shape and data length; errors are unprefixed.
func (t Tensor) check() (int, error) {
	nb, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return 0, err
	}
	if len(t.Data) != nb {
		return 0, fmt.Errorf("data has %d bytes, but shape %v of %s needs %d", len(t.Data), t.Shape, t.DType, nb)
	}
	return nb / DTypeSize(t.DType), nil
}

// Validate reports whether the dtype is supported, the shape is valid and the
// data length matches.
func (t Tensor) Validate() error {
	if _, err := t.check(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Float32 converts a floating-point tensor (F32, F16, BF16, F64) to float32.
// F16 and BF16 convert exactly (subnormals, infinities and NaN included); F64
// rounds to nearest.
func (t Tensor) Float32() ([]float32, error) {
	switch t.DType {
	case "F32", "F16", "BF16", "F64":
	default:
		return nil, fmt.Errorf("safetensors: cannot convert dtype %q to float32", t.DType)
	}
	n, err := t.check()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	out := make([]float32, n)
	d := t.Data
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case "F16":
		tab := f16Table()
		for i := range out {
			out[i] = tab[binary.LittleEndian.Uint16(d[2*i:])]
		}
	case "BF16":
		for i := range out {
			out[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	}
	return out, nil
}

// Int64 converts an integer tensor (I64, I32, I16, I8, U8, U16, U32, U64,
// BOOL) to int64. U64 values above math.MaxInt64 are an error.
func (t Tensor) Int64() ([]int64, error) {
	switch t.DType {
	case "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL":
	default:
		return nil, fmt.Errorf("safetensors: cannot convert dtype %q to int64", t.DType)
	}
	n, err := t.check()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	out := make([]int64, n)
	d := t.Data
	switch t.DType {
	case "I64":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	case "I32":
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		}
	case "I16":
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		}
	case "I8":
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case "U64":
		for i := range out {
			u := binary.LittleEndian.Uint64(d[8*i:])
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("safetensors: U64 value %d at index %d overflows int64", u, i)
			}
			out[i] = int64(u)
		}
	case "U32":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case "U16":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case "U8", "BOOL":
		for i := range out {
			out[i] = int64(d[i])
		}
	}
	return out, nil
}

func mustCount(shape []int, n int) []int {
	want, err := numElements(shape)
	if err != nil {
		panic("safetensors: " + err.Error())
	}
	if want != n {
		panic(fmt.Sprintf("safetensors: shape %v has %d elements, got %d values", shape, want, n))
	}
	return append([]int{}, shape...)
}

// FromFloat32 returns an F32 tensor holding a copy of v. It panics when
// len(v) does not match the shape.
func FromFloat32(shape []int, v []float32) Tensor {
	shape = mustCount(shape, len(v))
	d := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: "F32", Shape: shape, Data: d}
}

// FromInt64 returns an I64 tensor holding a copy of v. It panics when len(v)
// does not match the shape.
func FromInt64(shape []int, v []int64) Tensor {
	shape = mustCount(shape, len(v))
	d := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(d[8*i:], uint64(x))
	}
	return Tensor{DType: "I64", Shape: shape, Data: d}
}

// FromFloat32As returns a tensor of dtype F32, F64, F16 or BF16 holding v,
// rounding to nearest-even for F16 and BF16 (overflow gives ±Inf). It fails
// for other dtypes and when len(v) does not match the shape.
func FromFloat32As(dtype string, shape []int, v []float32) (Tensor, error) {
	want, err := numElements(shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("safetensors: %w", err)
	}
	if want != len(v) {
		return Tensor{}, fmt.Errorf("safetensors: shape %v has %d elements, got %d values", shape, want, len(v))
	}
	shape = slices.Clone(shape)
	if shape == nil {
		shape = []int{}
	}
	var d []byte
	switch dtype {
	case "F32":
		return FromFloat32(shape, v), nil
	case "F64":
		d = make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(d[8*i:], math.Float64bits(float64(x)))
		}
	case "F16":
		d = make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(d[2*i:], Float32ToFloat16(x))
		}
	case "BF16":
		d = make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(d[2*i:], Float32ToBFloat16(x))
		}
	default:
		return Tensor{}, fmt.Errorf("safetensors: cannot convert float32 to dtype %q", dtype)
	}
	return Tensor{DType: dtype, Shape: shape, Data: d}, nil
}

// Float16ToFloat32 converts IEEE 754 binary16 bits to float32 exactly,
// including subnormals, infinities and NaN (payload kept).
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	var bits uint32
	switch {
	case exp == 0 && mant == 0: // ±0
		bits = sign
	case exp == 0: // subnormal: mant × 2^-24, normalised for float32
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		bits = sign | e<<23 | (mant&0x3ff)<<13
	case exp == 0x1f: // ±Inf, NaN
		bits = sign | 0xff<<23 | mant<<13
	default:
		bits = sign | (exp+127-15)<<23 | mant<<13
	}
	return math.Float32frombits(bits)
}

// f16Table maps every binary16 bit pattern to its float32 value.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = Float16ToFloat32(uint16(i))
	}
	return &t
})

// Float32ToFloat16 converts f to IEEE 754 binary16 bits, rounding to nearest
// even; values beyond the range become ±Inf and NaN stays a (quiet) NaN.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e >= 1 { // normal; a carry out of the mantissa bumps the exponent (to Inf at most)
		h := uint32(e)<<10 | mant>>13
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	// Subnormal or zero in binary16: value = m × 2^(exp-150), in units of 2^-24.
	shift := uint(126 - exp)
	if exp == 0 || shift > 24 {
		return sign
	}
	m := mant | 0x800000
	q := m >> shift
	rest := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || (rest == half && q&1 == 1) {
		q++
	}
	return sign | uint16(q)
}

// BFloat16ToFloat32 converts bfloat16 bits to float32 (exact).
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 converts f to bfloat16 bits, rounding to nearest even;
// NaN stays a (quiet) NaN.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
