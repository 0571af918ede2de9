package slide

import (
	"bytes"
	"image/jpeg"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

func TestEncodeJPEG(t *testing.T) {
	img := raster.New(37, 21)
	for y := range img.H {
		for x := range img.W {
			i := 3 * (y*img.W + x)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2] = uint8(7*x), uint8(11*y), 200
		}
	}
	b, err := EncodeJPEG(img, 95)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := dec.Bounds(); r.Dx() != 37 || r.Dy() != 21 {
		t.Fatalf("decoded %v", r)
	}
	for _, p := range [][2]int{{0, 0}, {18, 10}, {36, 20}} {
		r, g, bl, _ := dec.At(p[0], p[1]).RGBA()
		i := 3 * (p[1]*img.W + p[0])
		for c, v := range []uint32{r >> 8, g >> 8, bl >> 8} {
			if d := int(v) - int(img.Pix[i+c]); d < -12 || d > 12 {
				t.Errorf("pixel %v channel %d: %d, want %d", p, c, v, img.Pix[i+c])
			}
		}
	}
	if _, err := EncodeJPEG(&raster.RGB{}, 80); err == nil {
		t.Error("empty image encoded")
	}
}
