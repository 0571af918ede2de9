package synth_test

import (
	"flag"
	"image"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/synth"
)

var updatePinned = flag.Bool("update-pinned", false, "rewrite testdata/pinned-slides.sha256 from the slides generated now")

// pinnedSlides cover every option: Aperio with and without resolution, a
// 4× pyramid, BigTIFF, a single level, IHC texture, small tiles and another
// quality, overlapping pieces and pieces partly outside the slide.
var pinnedSlides = []struct {
	name string
	opt  synth.SlideOptions
}{
	{"aperio40.svs", synth.SlideOptions{Width: 1500, Height: 1100, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Seed: 7,
		Tissue: []image.Rectangle{image.Rect(100, 120, 700, 900), image.Rect(600, 500, 1700, 1000)}}},
	{"aperio20.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, AppMag: 20, Aperio: true, Pyramid: true,
		Tissue: []image.Rectangle{image.Rect(512, 512, 1536, 1280), image.Rect(2048, 1024, 3072, 2560)}}},
	{"ihc.svs", synth.SlideOptions{Width: 1000, Height: 800, MPP: 0.5, AppMag: 20, Aperio: true, Pyramid: true, Stain: "ihc",
		TileSize: 128, Quality: 70, Seed: 3, Tissue: []image.Rectangle{image.Rect(-50, 40, 520, 760)}}},
	{"nompp.svs", synth.SlideOptions{Width: 900, Height: 700, Aperio: true, Pyramid: true, Seed: 5,
		Tissue: []image.Rectangle{image.Rect(300, 200, 800, 650)}}},
	{"big.tif", synth.SlideOptions{Width: 1200, Height: 900, MPP: 0.5, BigTIFF: true, Pyramid: true, Seed: 11,
		Tissue: []image.Rectangle{image.Rect(0, 0, 1200, 450)}}},
	{"flat.tif", synth.SlideOptions{Width: 600, Height: 400, MPP: 0.5, Stain: "ihc", Tissue: []image.Rectangle{image.Rect(50, 50, 550, 350)}}},
	{"blank.tif", synth.SlideOptions{Width: 700, Height: 300, Pyramid: true}},
}

// TestSynthSlidesPinned: the same options and seed give byte-identical
// slides. The SHA-256s in testdata were computed with libvips 8.14 (Debian
// 12) on amd64; another libvips or libjpeg may encode differently: check the
// slides, then rewrite the pins with -update-pinned.
func TestSynthSlidesPinned(t *testing.T) {
	dir := t.TempDir()
	got := map[string]string{}
	for _, p := range pinnedSlides {
		path := filepath.Join(dir, p.name)
		if err := synth.WriteSlide(path, p.opt); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		got[p.name] = testutil.FileSHA256(t, path)
	}
	testutil.CheckPinned(t, filepath.Join("testdata", "pinned-slides.sha256"), got, *updatePinned)
}
