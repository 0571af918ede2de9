package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// file50MB is 50 F32 tensors of 256K elements (1 MiB each) plus metadata.
func file50MB() *File {
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{"format": "pt"}}
	v := make([]float32, 256*1024)
	for i := range v {
		v[i] = float32(i) * 0.5
	}
	for i := range 50 {
		f.Tensors[fmt.Sprintf("layer.%02d.weight", i)] = FromFloat32([]int{512, 512}, v)
	}
	return f
}

func BenchmarkParse50MB(b *testing.B) {
	data, err := file50MB().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal50MB(b *testing.B) {
	f := file50MB()
	b.SetBytes(50 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteRead50MB(b *testing.B) {
	f := file50MB()
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	b.SetBytes(50 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(path, f); err != nil {
			b.Fatal(err)
		}
		if _, err := Read(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloat32FromF16(b *testing.B) {
	v := make([]float32, 1<<20)
	for i := range v {
		v[i] = float32(i%4096) / 7
	}
	t, _ := FromFloat32As("F16", []int{len(v)}, v)
	b.SetBytes(int64(len(t.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Float32(); err != nil {
			b.Fatal(err)
		}
	}
}
