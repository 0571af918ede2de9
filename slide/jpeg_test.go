package slide

import (
	"bytes"
	"image"
	"image/jpeg"
	"strings"
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

// decodeJPEGInto (libjpeg on the calling thread, the DICOM frame decoder)
// gives the same pixels as libvips' jpegload_buffer, which DICOM frames went
// through before, for chroma-subsampled, full-chroma and grey JPEGs and when
// cropping a frame stored larger than the header says.
func TestDecodeJPEGIntoEqualsJpegload(t *testing.T) {
	if err := ensureInit(); err != nil {
		t.Fatal(err)
	}
	img := raster.New(70, 45)
	for y := range img.H {
		for x := range img.W {
			i := 3 * (y*img.W + x)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2] = uint8(7*x+y*y), uint8(11*y^x), uint8(200-x)
		}
	}
	var grey bytes.Buffer
	g := image.NewGray(image.Rect(0, 0, 70, 45))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 13)
	}
	if err := jpeg.Encode(&grey, g, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	q95, err := EncodeJPEG(img, 95) // libjpeg: 4:2:0
	if err != nil {
		t.Fatal(err)
	}
	var q100 bytes.Buffer // image/jpeg at quality 100 is 4:2:0 as well; a different encoder
	rgba := image.NewRGBA(image.Rect(0, 0, 70, 45))
	for i := 0; i < 70*45; i++ {
		copy(rgba.Pix[4*i:], img.Pix[3*i:3*i+3])
		rgba.Pix[4*i+3] = 255
	}
	if err := jpeg.Encode(&q100, rgba, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		buf    []byte
		dw, dh int
	}{
		{"libjpeg-q95", q95, 70, 45},
		{"go-q100", q100.Bytes(), 70, 45},
		{"grey", grey.Bytes(), 70, 45},
		{"cropped", q95, 64, 40},
	}
	for _, c := range cases {
		want, w, _, err := decodeBuffer(c.buf, codecJPEG)
		if err != nil {
			t.Fatalf("%s: jpegload: %v", c.name, err)
		}
		got := make([]byte, 3*c.dw*c.dh)
		if err := decodeJPEGInto(c.buf, got, c.dw, c.dh); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for y := 0; y < c.dh; y++ {
			if !bytes.Equal(got[3*y*c.dw:3*(y+1)*c.dw], want[3*y*w:3*y*w+3*c.dw]) {
				t.Errorf("%s: row %d differs from jpegload's", c.name, y)
				break
			}
		}
	}
	bad := bytes.Clone(q95)
	bad = bad[:len(bad)/2]
	if err := decodeJPEGInto(bad, make([]byte, 3*70*45), 70, 45); err == nil || !strings.Contains(err.Error(), "jpeg: ") {
		t.Errorf("truncated JPEG: %v", err)
	}
	if err := decodeJPEGInto(q95, make([]byte, 3*80*45), 80, 45); err == nil || !strings.Contains(err.Error(), "decodes as 70x45") {
		t.Errorf("JPEG smaller than the frame: %v", err)
	}
}
