package viewer

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/pipeline"
)

// In headless Chromium the viewer page loads OpenSeadragon, opens the
// slide's Deep Zoom descriptor, fetches the attention and shows the
// prediction, and the patch at a point (#at=X,Y, as a click) (only when this build embeds OpenSeadragon).
func TestViewChromium(t *testing.T) {
	if !HaveOpenSeadragon() {
		t.Skip("OpenSeadragon not fetched (scripts/fetch-openseadragon.sh)")
	}
	chromium := testutil.Chromium(t)
	srv, _, dir := testWork(t)
	att := `{"patch_size_level0":256,"patches":[[0,0,0],[256,0,0.5],[512,256,1]],"prediction":"3+","probabilities":[0.1,0.1,0.2,0.6]}`
	if err := os.WriteFile(filepath.Join(dir, "slides", "s1", "attention.json"), []byte(att), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, c := range []struct{ hash, want string }{
		{"#at=600,300", "patch 2 at (512, 256), attention 1.000"}, // clicks: TestViewClickChromium
	} {
		dom := testutil.ChromiumDOM(t, chromium, ts.URL+"/slides/s1/view"+c.hash, 90*time.Second, "--virtual-time-budget=10000")
		for _, want := range []string{"openseadragon-canvas", "<strong>HER2 3+</strong>", "0.100 / 0.100 / 0.200 / 0.600", `<div id="scale"><div style="width: `, c.want} {
			if !strings.Contains(dom, want) {
				t.Errorf("%s: the viewer's DOM lacks %q:\n%s", c.hash, want, dom)
			}
		}
	}
}

// A real browser session over a tiled slide with two models' attention:
// a mouse click on a patch shows its coordinate and score, keyboard zoom
// works, the slide's name, prediction, colour bar, scale bar and
// magnification are on screen, t toggles the tissue outline and patch
// grid (drawn in green and blue), ?model= shows another model's run.
// Screenshots go to $HER2WSI_VIEWER_SHOTS when set (else a temp folder).
func TestViewClickChromium(t *testing.T) {
	if !HaveOpenSeadragon() {
		t.Skip("OpenSeadragon not fetched (scripts/fetch-openseadragon.sh)")
	}
	chromium := testutil.Chromium(t)
	srv, work := tiledWork(t, []image.Rectangle{image.Rect(700, 900, 3300, 4100), image.Rect(4600, 1500, 7400, 5300)})
	_, coords := slideCoords(t, work, "t1")
	n := len(coords) / 2
	writeAtt := func(path, model, pred string, probs []float64, flip bool, keep int) {
		a := pipeline.Attention{PatchSizeLevel0: 256, Prediction: pred, Probabilities: probs, Model: model, Variant: "ipca", Time: "2026-12-0" + pred[:1] + "T10:00:00Z"}
		for i := range keep {
			s := float64(i) / float64(n-1)
			if flip {
				s = 1 - s
			}
			a.Patches = append(a.Patches, [3]float64{float64(coords[2*i]), float64(coords[2*i+1]), s})
		}
		b, _ := json.Marshal(a)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeAtt(work.ModelAttentionJSON("t1", "aaaa11112222"), "aaaa11112222", "2+", []float64{0.1, 0.2, 0.6, 0.1}, true, n-1)
	writeAtt(work.ModelAttentionJSON("t1", "bbbb33334444"), "bbbb33334444", "3+", []float64{0.05, 0.05, 0.2, 0.7}, false, n)
	writeAtt(work.AttentionJSON("t1"), "bbbb33334444", "3+", []float64{0.05, 0.05, 0.2, 0.7}, false, n)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	shots := os.Getenv("HER2WSI_VIEWER_SHOTS")
	if shots == "" {
		shots = t.TempDir()
	}

	b := startBrowser(t, chromium, 1280, 860)
	ready := `document.body.dataset.ready === "1" && window.her2wsiViewer.world.getItemCount() === 2 && window.her2wsiViewer.world.getItemAt(0).getFullyLoaded()`
	b.navigate(ts.URL + "/slides/t1/view")
	b.waitFor("the viewer", ready, 60*time.Second)

	var head struct {
		Title, Prediction, Scale, Mag string
		Bar, ScaleW                   float64
		Models                        []string
		Focused                       bool
	}
	b.eval(`(() => ({title: document.querySelector("h1").textContent, prediction: document.getElementById("prediction").textContent,
		scale: document.getElementById("scale").textContent, mag: (document.getElementById("mag") || {}).textContent || "",
		bar: document.getElementById("bar").getBoundingClientRect().width,
		scaleW: document.querySelector("#scale div").getBoundingClientRect().width,
		models: [...document.querySelectorAll("#model option")].map(o => o.textContent),
		focused: document.activeElement === window.her2wsiViewer.canvas}))()`, &head)
	t.Logf("header: %+v", head)
	if head.Title != "t1 t1.tif" || !strings.Contains(head.Prediction, "HER2 3+") || !strings.Contains(head.Prediction, "0.050 / 0.050 / 0.200 / 0.700") {
		t.Errorf("slide name %q, prediction %q", head.Title, head.Prediction)
	}
	if head.Bar < 50 || head.ScaleW < 40 || head.ScaleW > 160 || !regexp.MustCompile(`^\d+ (µm|mm) · [\d.]+×$`).MatchString(head.Scale) {
		t.Errorf("colour bar %.0f px wide, scale bar %.0f px %q", head.Bar, head.ScaleW, head.Scale)
	}
	if len(head.Models) != 3 || !strings.Contains(head.Models[1], "bbbb33334444 · 3+") || !strings.Contains(head.Models[2], "aaaa11112222 · 2+") {
		t.Errorf("model choices %q", head.Models)
	}
	if !head.Focused {
		t.Errorf("the slide does not have the keyboard focus")
	}

	// page point of level-0 point (x, y)
	at := func(x, y float64) (float64, float64) {
		var p [2]float64
		b.eval(fmt.Sprintf(`(() => { const v = window.her2wsiViewer, q = v.world.getItemAt(0).imageToViewerElementCoordinates(new OpenSeadragon.Point(%g, %g)),
			r = v.element.getBoundingClientRect(); return [r.left + q.x, r.top + q.y]; })()`, x, y), &p)
		return p[0], p[1]
	}
	info := func() string {
		var s string
		b.eval(`document.getElementById("info").textContent`, &s)
		return s
	}
	for _, k := range []int{0, n / 2, n - 1} {
		x, y := at(float64(coords[2*k]+128), float64(coords[2*k+1]+128))
		b.click(x, y)
		want := fmt.Sprintf("patch %d at (%d, %d), attention %.3f", k, coords[2*k], coords[2*k+1], float64(k)/float64(n-1))
		if got := info(); got != want {
			t.Errorf("click on patch %d at page (%.0f, %.0f): %q, want %q", k, x, y, got, want)
		}
	}
	x, y := at(4000, 5900) // glass
	b.click(x, y)
	if got := info(); !strings.HasSuffix(got, ": no patch") {
		t.Errorf("click on glass: %q", got)
	}
	b.screenshot(filepath.Join(shots, "viewer-attention.png"))

	// keyboard zoom: = zooms in, - out; the magnification follows
	zoom := func() (z float64, mag string) {
		var r struct {
			Z   float64
			Mag string
		}
		b.eval(`({z: window.her2wsiViewer.viewport.getZoom(true), mag: document.getElementById("mag").textContent})`, &r)
		return r.Z, r.Mag
	}
	// (held keys zoom per frame: on a loaded machine a press may do
	// little, so up to four presses)
	press := func(key, code string, vk int, done func(z float64) bool) {
		for range 4 {
			b.key(key, code, vk)
			time.Sleep(800 * time.Millisecond)
			if z, _ := zoom(); done(z) {
				return
			}
		}
	}
	z0, mag0 := zoom()
	press("=", "Equal", 187, func(z float64) bool { return z > 1.1*z0 })
	z1, mag1 := zoom()
	press("-", "Minus", 189, func(z float64) bool { return z < z1/1.1 })
	z2, _ := zoom()
	t.Logf("keyboard zoom: %.3f (%s) → = %.3f (%s) → - - %.3f", z0, mag0, z1, mag1, z2)
	if !(z1 > 1.1*z0) || mag1 == mag0 || !(z2 < z1/1.1) {
		t.Errorf("keyboard zoom: %.3f (%s) → = %.3f (%s) → - - %.3f", z0, mag0, z1, mag1, z2)
	}
	b.eval(`window.her2wsiViewer.viewport.goHome(true), true`, nil)

	// the tiling overlay: off, then t; its canvas's green and blue pixels
	pixels := func() (any, green, blue int) {
		var r [3]int
		b.eval(`(() => { const c = document.getElementById("tiling-layer"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let any = 0, g = 0, bl = 0;
			for (let i = 0; i < d.length; i += 4) { if (!d[i+3]) continue; any++;
				if (d[i+1] > 150 && d[i+2] < 100) g++; else if (d[i+2] > 150 && d[i+1] < 100) bl++; }
			return [any, g, bl]; })()`, &r)
		return r[0], r[1], r[2]
	}
	if a, _, _ := pixels(); a != 0 {
		t.Errorf("tiling overlay off: %d pixels drawn", a)
	}
	b.key("t", "KeyT", 84)
	time.Sleep(300 * time.Millisecond)
	var checked bool
	b.eval(`document.getElementById("tiling").checked`, &checked)
	a, g, bl := pixels()
	t.Logf("tiling overlay at the whole slide: %d pixels, %d green, %d blue", a, g, bl)
	if !checked || g < 500 || bl < 500 {
		t.Errorf("t: tiling overlay on %v; %d pixels, %d green (outline), %d blue (patches)", checked, a, g, bl)
	}
	b.screenshot(filepath.Join(shots, "viewer-tiling.png"))
	// zoomed out (a patch a few pixels): the grid as one picture
	b.eval(`(() => { const v = window.her2wsiViewer; v.viewport.zoomTo(v.viewport.getHomeZoom() * 0.2, null, true); v.forceRedraw(); return true; })()`, nil)
	time.Sleep(300 * time.Millisecond)
	if a, g, bl := pixels(); g < 50 || a < 200 {
		t.Errorf("zoomed out: %d pixels, %d green, %d blue", a, g, bl)
	}
	// zoomed in on a patch at the tissue's edge: its outline and the tissue outline
	k := 0
	b.eval(fmt.Sprintf(`(() => { const v = window.her2wsiViewer, b = v.world.getItemAt(0);
		v.viewport.fitBounds(b.imageToViewportRectangle(%d - 384, %d - 384, 1024, 1024), true); v.forceRedraw(); return true; })()`, coords[2*k], coords[2*k+1]), nil)
	b.waitFor("tiles", `window.her2wsiViewer.world.getItemAt(0).getFullyLoaded()`, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	a, g, bl = pixels()
	t.Logf("tiling overlay zoomed in: %d pixels, %d green, %d blue", a, g, bl)
	if g < 100 || bl < 100 {
		t.Errorf("zoomed in: %d pixels, %d green, %d blue", a, g, bl)
	}
	b.screenshot(filepath.Join(shots, "viewer-zoomed.png"))
	b.key("t", "KeyT", 84)
	time.Sleep(200 * time.Millisecond)
	if a, _, _ := pixels(); a != 0 {
		t.Errorf("t again: %d pixels still drawn", a)
	}

	// another model's run
	b.navigate(ts.URL + "/slides/t1/view?model=aaaa11112222")
	b.waitFor("the viewer with model a", ready, 60*time.Second)
	var pred string
	b.eval(`document.getElementById("prediction").textContent`, &pred)
	x, y = at(float64(coords[0]+128), float64(coords[1]+128))
	b.click(x, y)
	if got := info(); !strings.Contains(pred, "HER2 2+") || !strings.HasSuffix(got, "attention 1.000") {
		t.Errorf("?model=aaaa11112222: prediction %q, patch 0: %q", pred, got)
	}
	// a tiled patch this model did not see
	x, y = at(float64(coords[2*(n-1)]+128), float64(coords[2*(n-1)+1]+128))
	b.click(x, y)
	if got, want := info(), fmt.Sprintf("tiled patch %d at (%d, %d): not among the patches the model saw", n-1, coords[2*(n-1)], coords[2*(n-1)+1]); got != want {
		t.Errorf("?model=aaaa11112222, the patch it did not see: %q, want %q", got, want)
	}

	// a link to a patch (#at=X,Y) shows it and zooms to it with its neighbours
	k = n / 3
	px, py := coords[2*k]+100, coords[2*k+1]+50
	b.navigate(fmt.Sprintf("%s/slides/t1/view?tiling=1#at=%d,%d", ts.URL, px, py)) // another document: not a same-page hash change
	b.waitFor("the viewer at a patch", ready, 60*time.Second)
	var view struct{ CX, CY, W float64 }
	b.eval(`(() => { const v = window.her2wsiViewer, b = v.world.getItemAt(0), r = b.viewportToImageRectangle(v.viewport.getBounds(true));
		return {cx: r.x + r.width / 2, cy: r.y + r.height / 2, w: Math.min(r.width, r.height)}; })()`, &view)
	if got, want := info(), fmt.Sprintf("patch %d at (%d, %d)", k, coords[2*k], coords[2*k+1]); !strings.HasPrefix(got, want) ||
		math.Abs(view.CX-float64(px)) > 64 || math.Abs(view.CY-float64(py)) > 64 || view.W < 700 || view.W > 1000 {
		t.Errorf("#at=%d,%d: %q (want %q), view centred at (%.0f, %.0f), %.0f px across", px, py, got, want, view.CX, view.CY, view.W)
	}

	// drawing cost with 49 152 patches (32-px patches over this slide: a
	// 256×192 grid), whole slide (one picture) and zoomed in so that
	// every patch is 6–7 px and outlined, most of them in view
	var cost struct{ Pic, Rects, Visible float64 }
	b.eval(`(() => { const v = window.her2wsiViewer, coords = [];
		for (let r = 0; r < 192; r++) for (let c = 0; c < 256; c++) coords.push(c * 32, r * 32);
		window.her2wsiTiling.set({patch_size_level0: 32, coords, outline: [[0, 0, 8192, 0, 8192, 6144, 0, 6144]]});
		document.getElementById("tiling").checked = true;
		const time = () => { const t0 = performance.now(); for (let i = 0; i < 20; i++) window.her2wsiTiling.draw(); return (performance.now() - t0) / 20; };
		v.viewport.goHome(true); v.viewport.update();
		const pic = time();
		const home = v.viewport.getZoom(true), s = v.world.getItemAt(0).viewportToImageZoom(home);
		v.viewport.zoomTo(home * 6.5 / (32 * s), null, true); v.viewport.update();
		const rects = time();
		const b = v.world.getItemAt(0), w = v.canvas.clientWidth, h = v.canvas.clientHeight;
		const p0 = b.viewerElementToImageCoordinates(new OpenSeadragon.Point(0, 0)), p1 = b.viewerElementToImageCoordinates(new OpenSeadragon.Point(w, h));
		const visible = Math.min(256, (p1.x - p0.x) / 32) * Math.min(192, (p1.y - p0.y) / 32);
		return {pic, rects, visible}; })()`, &cost)
	t.Logf("tiling overlay, 49 152 patches: %.2f ms a frame zoomed out (one picture), %.2f ms outlining the %.0f in view", cost.Pic, cost.Rects, cost.Visible)
	if cost.Pic > 50 || cost.Rects > 200 || cost.Visible < 10000 {
		t.Errorf("tiling overlay, 49 152 patches: %.2f ms zoomed out, %.2f ms for %.0f patches in view", cost.Pic, cost.Rects, cost.Visible)
	}
	b.screenshot(filepath.Join(shots, "viewer-many-patches.png"))
	t.Logf("screenshots in %s", shots)
}
