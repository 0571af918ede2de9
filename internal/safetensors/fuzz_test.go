package safetensors

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  `, make([]byte, 8)),
		build(`{"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}}`, []byte{0x80, 0x3f}),
		build(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}),
		build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)),
		build(`{"__metadata__":{"k":1}}`, nil),
		build(`{}`, nil),
		{1, 2, 3},
	}
	if b, err := allDTypesFile().Marshal(); err == nil {
		seeds = append(seeds, b)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "safetensors: ") || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("bad error message %q", msg)
			}
			return
		}
		for name, tt := range file.Tensors {
			if err := tt.Validate(); err != nil {
				t.Fatalf("parsed tensor %q invalid: %v", name, err)
			}
			if _, err := tt.Float32(); err != nil && (tt.DType == "F32" || tt.DType == "F16" || tt.DType == "BF16" || tt.DType == "F64") {
				t.Fatalf("Float32 of %q: %v", name, err)
			}
		}
		m, err := file.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed file: %v", err)
		}
		again, err := Parse(m)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v", err)
		}
		assertSame(t, file, again)
		m2, err := again.Marshal()
		if err != nil || !bytes.Equal(m, m2) {
			t.Fatalf("Marshal not stable: %v", err)
		}
	})
}
