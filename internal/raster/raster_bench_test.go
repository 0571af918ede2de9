package raster

import "testing"

func BenchmarkHalve512(b *testing.B) {
	src := New(512, 512)
	for i := range src.Pix {
		src.Pix[i] = byte(i * 7)
	}
	dst := New(256, 256)
	b.SetBytes(int64(len(src.Pix)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Halve(src, dst)
	}
}

func BenchmarkResize561to256(b *testing.B) {
	src := New(561, 561)
	for i := range src.Pix {
		src.Pix[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(src.Pix)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Resize(src, 256, 256); err != nil {
			b.Fatal(err)
		}
	}
}
