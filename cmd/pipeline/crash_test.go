package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth"
)

// Crash-safety and rerun tests of `pipeline run`, driven through the real
// binary (so that a process can be SIGKILLed at any point).

// tmpName is the name atomicfile gives temporary files: ".<base>.tmp-<16 hex>".
var tmpName = regexp.MustCompile(`^\..+\.tmp-[0-9a-f]{16}$`)

var crashStages = []string{pipeline.StageTile, pipeline.StageEmbed, pipeline.StageAnchors}

// crashEnv builds the pipeline binary once per test and returns it with the
// environment its runs need; it skips the test when ONNX Runtime is absent.
func crashEnv(t *testing.T) (bin string, env []string) {
	t.Helper()
	lib := os.Getenv(features.LibraryEnv)
	if lib == "" {
		lib, _ = filepath.Abs(filepath.Join("..", "..", ".cache", "onnxruntime", "1.30.0", "libonnxruntime.so.1"))
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("ONNX Runtime library not found (%v): set %s", err, features.LibraryEnv)
	}
	bin = filepath.Join(t.TempDir(), "pipeline")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin, append(os.Environ(), features.LibraryEnv+"="+lib)
}

func crashEncoder(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "features", "testdata", "encoders", "tiny-clip.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// crashSlides writes n small 20× slides (a few dozen patches each) into a
// new directory. The tissue rectangles are not aligned to the 256-px grid,
// so the edge patches are partly tissue and --min-tissue changes the grid.
func crashSlides(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		o := synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, AppMag: 20, Aperio: true, Pyramid: true, Seed: uint64(i + 1),
			Tissue: []image.Rectangle{
				image.Rect(640+64*i, 640, 1664+64*i, 1408),
				image.Rect(2176, 1152-64*i, 3200, 2688-64*i),
			}}
		if err := synth.WriteSlide(filepath.Join(dir, "s"+string(rune('a'+i))+".svs"), o); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pipelineCmd is `pipeline run --stage tile,embed,anchors` over input into work.
func pipelineCmd(bin string, env []string, input, work, encoder string, extra ...string) *exec.Cmd {
	args := append([]string{"run", "--input", input, "--work", work, "--stage", strings.Join(crashStages, ","),
		"--encoder", encoder, "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return cmd
}

func runOK(t *testing.T, cmd *exec.Cmd) time.Duration {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return time.Since(start)
}

func slideIDs(t *testing.T, work string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(work, "slides"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// checkNothingHalfDone checks that every output in a work folder that a
// killed run left is complete and consistent: slide.json with its coords,
// features rows with coords.h5, anchors readable for every ppk, state.json
// parseable and naming as done only stages whose outputs are there.
func checkNothingHalfDone(t *testing.T, work string) {
	t.Helper()
	w := pipeline.Work{Dir: work}
	if _, err := os.Stat(filepath.Join(work, "slides")); err != nil {
		return // killed before any slide folder
	}
	for _, id := range slideIDs(t, work) {
		exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
		var coords []int64
		tiled := exists(w.SlideJSON(id))
		if tiled {
			rec, err := w.ReadSlideRecord(id)
			if err != nil {
				t.Errorf("%s: slide.json: %v", id, err)
				continue
			}
			if coords, err = w.ReadCoords(id, rec); err != nil {
				t.Errorf("%s: slide.json exists but coords.h5 is not complete: %v", id, err)
				continue
			}
		}
		feats, _ := filepath.Glob(filepath.Join(w.SlideDir(id), "features", "*.h5"))
		for _, f := range feats {
			_, fc, _, err := featfile.Read(f)
			if err != nil {
				t.Errorf("%s: %s is not complete: %v", id, filepath.Base(f), err)
				continue
			}
			if !tiled {
				t.Errorf("%s: %s exists without slide.json", id, filepath.Base(f))
			} else if !slices.Equal(fc, coords) {
				t.Errorf("%s: %s coordinates (%d) differ from coords.h5 (%d)", id, filepath.Base(f), len(fc), len(coords))
			}
		}
		hasAnchors := exists(w.AnchorsH5(id))
		if hasAnchors {
			for _, ppk := range anchors.PPKValues {
				idx, _, err := w.ReadAnchors(id, ppk)
				if err != nil {
					t.Errorf("%s: anchors.h5 ppk %d: %v", id, ppk, err)
					break
				}
				for _, i := range idx {
					if i < 0 || int(i) >= len(coords)/2 {
						t.Errorf("%s: anchors.h5 ppk %d: index %d outside %d patches", id, ppk, i, len(coords)/2)
						break
					}
				}
			}
		}
		if exists(w.StateJSON(id)) {
			b, err := os.ReadFile(w.StateJSON(id))
			var st pipeline.SlideState
			if err == nil {
				err = json.Unmarshal(b, &st)
			}
			if err != nil {
				t.Errorf("%s: state.json: %v", id, err)
				continue
			}
			done := func(s string) bool { return st.Stages[s].Status == "done" }
			if done(pipeline.StageTile) && !tiled {
				t.Errorf("%s: state.json says tile done but slide.json is missing", id)
			}
			if done(pipeline.StageEmbed) && len(feats) == 0 {
				t.Errorf("%s: state.json says embed done but there are no features", id)
			}
			if done(pipeline.StageAnchors) && !hasAnchors {
				t.Errorf("%s: state.json says anchors done but anchors.h5 is missing", id)
			}
		}
	}
}

// outputFiles lists the files under work/slides (relative paths), leaving
// out temporary files, locks and state.json (rewritten by every run).
func outputFiles(t *testing.T, work string, withState bool) (files []string, temps int) {
	t.Helper()
	root := filepath.Join(work, "slides")
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, 0 // killed before any slide was locked (while the encoder loaded)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		switch {
		case tmpName.MatchString(name):
			temps++
			return nil
		case strings.HasPrefix(name, ".lock"):
			return nil
		case name == "state.json" && !withState:
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files, temps
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readState(t *testing.T, work, id string) pipeline.SlideState {
	t.Helper()
	st, err := pipeline.Work{Dir: work}.ReadState(id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCrashKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop: slow")
	}
	bin, env := crashEnv(t)
	enc := crashEncoder(t)
	input := crashSlides(t, 3)
	dir := t.TempDir()
	workA, workB := filepath.Join(dir, "A"), filepath.Join(dir, "B")

	ref := runOK(t, pipelineCmd(bin, env, input, workA, enc))
	t.Logf("reference run: %v", ref)

	seed := uint64(20240601)
	if v, err := strconv.ParseUint(os.Getenv("HER2WSI_CRASH_SEED"), 10, 64); err == nil {
		seed = v // to explore other kill times
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	lo := 50 * time.Millisecond
	hi := max(ref, lo+time.Millisecond)
	const kills = 10
	finished := false
	for i := range kills {
		if finished {
			// The last run got to the end: start again from an empty
			// folder, so that later kills land in every stage too.
			if err := os.RemoveAll(workB); err != nil {
				t.Fatal(err)
			}
		}
		delay := lo + time.Duration(rng.Int64N(int64(hi-lo)))
		cmd := pipelineCmd(bin, env, input, workB, enc)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL) // may have finished already
		err := cmd.Wait()                   // reaps it, so its pid is gone for the lock check
		finished = err == nil
		if err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
				// Not killed: it exited by itself, and a run over a work
				// folder left by killed runs must not fail.
				t.Errorf("kill %d (after %v): run failed by itself: %v\n%s", i, delay, err, out.String())
			}
		}
		files, temps := outputFiles(t, workB, true)
		t.Logf("kill %d after %v: exit %v; %s; %d temp file(s) left", i, delay, err, progressOf(files), temps)
		checkNothingHalfDone(t, workB)
		if t.Failed() {
			t.Fatalf("after kill %d (delay %v) the work folder is inconsistent; output:\n%s", i, delay, out.String())
		}
	}

	runOK(t, pipelineCmd(bin, env, input, workB, enc))
	checkNothingHalfDone(t, workB)

	filesA, _ := outputFiles(t, workA, false)
	filesB, temps := outputFiles(t, workB, false)
	t.Logf("final: %d output files, %d temp file(s) left in B", len(filesB), temps)
	if !slices.Equal(filesA, filesB) {
		t.Fatalf("outputs after kills and a rerun differ from an uninterrupted run:\nA: %v\nB: %v", filesA, filesB)
	}
	for _, f := range filesA {
		pa, pb := filepath.Join(workA, "slides", f), filepath.Join(workB, "slides", f)
		switch {
		case strings.HasSuffix(f, "coords.h5"), strings.HasSuffix(f, "anchors.h5"):
			if fileSum(t, pa) != fileSum(t, pb) {
				t.Errorf("%s differs from the uninterrupted run", f)
			}
		case filepath.Base(filepath.Dir(f)) == "features":
			if fileSum(t, pa) == fileSum(t, pb) {
				continue
			}
			// Bytes may differ for reasons other than values; compare values.
			fa, ca, da, errA := featfile.Read(pa)
			fb, cb, db, errB := featfile.Read(pb)
			if errA != nil || errB != nil {
				t.Errorf("%s: %v / %v", f, errA, errB)
			} else if da != db || !slices.Equal(ca, cb) || !slices.Equal(fa, fb) {
				t.Errorf("%s: features differ from the uninterrupted run", f)
			} else {
				t.Logf("%s: same values, different bytes", f)
			}
		case strings.HasSuffix(f, "slide.json"):
			id := filepath.Dir(f)
			ra, _ := pipeline.Work{Dir: workA}.ReadSlideRecord(id)
			rb, _ := pipeline.Work{Dir: workB}.ReadSlideRecord(id)
			if ra.CoordsSHA256 != rb.CoordsSHA256 || ra.NumPatches != rb.NumPatches {
				t.Errorf("%s: slide.json differs: %d patches %s… vs %d patches %s…", f, ra.NumPatches, ra.CoordsSHA256, rb.NumPatches, rb.CoordsSHA256)
			}
		}
	}
	for _, id := range slideIDs(t, workB) {
		st := readState(t, workB, id)
		for _, s := range crashStages {
			if got := st.Stages[s]; got.Status != "done" {
				t.Errorf("%s: state.json stage %s: %q (%s), want done", id, s, got.Status, got.Error)
			}
		}
	}
}

// progressOf says how many slides have each stage's output.
func progressOf(files []string) string {
	var tiled, embedded, anchored int
	for _, f := range files {
		switch {
		case filepath.Base(f) == "slide.json":
			tiled++
		case filepath.Base(filepath.Dir(f)) == "features":
			embedded++
		case filepath.Base(f) == "anchors.h5":
			anchored++
		}
	}
	return fmt.Sprintf("tiled %d, embedded %d, anchored %d", tiled, embedded, anchored)
}

type fileStamp struct {
	sum string
	mod time.Time
}

func stamps(t *testing.T, work string) map[string]fileStamp {
	t.Helper()
	files, _ := outputFiles(t, work, false)
	m := map[string]fileStamp{}
	for _, f := range files {
		p := filepath.Join(work, "slides", f)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		m[f] = fileStamp{fileSum(t, p), fi.ModTime()}
	}
	return m
}

func TestStageRerunInvalidation(t *testing.T) {
	bin, env := crashEnv(t)
	enc := crashEncoder(t)
	input := crashSlides(t, 2)
	work := filepath.Join(t.TempDir(), "work")
	w := pipeline.Work{Dir: work}

	runOK(t, pipelineCmd(bin, env, input, work, enc))
	ids := slideIDs(t, work)
	if len(ids) != 2 {
		t.Fatalf("slides %v, want 2", ids)
	}
	for _, id := range ids {
		st := readState(t, work, id)
		for _, s := range crashStages {
			if g := st.Stages[s]; g.Status != "done" || g.Skipped {
				t.Errorf("first run: %s %s: %+v, want done, not skipped", id, s, g)
			}
		}
	}
	before := stamps(t, work)
	time.Sleep(20 * time.Millisecond) // so that a rewritten file gets a new mtime

	// Same settings again: every stage skips and no output is touched.
	runOK(t, pipelineCmd(bin, env, input, work, enc))
	for _, id := range ids {
		st := readState(t, work, id)
		for _, s := range crashStages {
			if g := st.Stages[s]; g.Status != "done" || !g.Skipped {
				t.Errorf("identical rerun: %s %s: status %q skipped %v (%s), want skipped", id, s, g.Status, g.Skipped, g.Reason)
			}
		}
	}
	if after := stamps(t, work); !equalStamps(t, before, after, "") {
		t.Errorf("identical rerun changed outputs")
	}

	// A tiling parameter that changes the grid, for one slide only.
	changed, other := ids[0], ids[1]
	recBefore, err := w.ReadSlideRecord(changed)
	if err != nil {
		t.Fatal(err)
	}
	otherState, _ := os.ReadFile(w.StateJSON(other))
	time.Sleep(20 * time.Millisecond)
	runOK(t, pipelineCmd(bin, env, filepath.Join(input, changed+".svs"), work, enc, "--min-tissue", "0.9"))

	recAfter, err := w.ReadSlideRecord(changed)
	if err != nil {
		t.Fatal(err)
	}
	if recAfter.CoordsSHA256 == recBefore.CoordsSHA256 || recAfter.NumPatches >= recBefore.NumPatches {
		t.Fatalf("--min-tissue 0.9 did not change the grid of %s: %d → %d patches", changed, recBefore.NumPatches, recAfter.NumPatches)
	}
	t.Logf("%s: %d → %d patches", changed, recBefore.NumPatches, recAfter.NumPatches)
	st := readState(t, work, changed)
	for _, s := range crashStages {
		if g := st.Stages[s]; g.Status != "done" || g.Skipped {
			t.Errorf("changed parameter: %s %s: status %q skipped %v (%s), want recomputed", changed, s, g.Status, g.Skipped, g.Reason)
		}
	}
	if err := json.Unmarshal(st.Stages[pipeline.StageTile].Params, new(any)); err != nil || !strings.Contains(string(st.Stages[pipeline.StageTile].Params), "0.9") {
		t.Errorf("state.json tile params do not record --min-tissue 0.9: %s", st.Stages[pipeline.StageTile].Params)
	}
	after := stamps(t, work)
	for f, b := range before {
		a := after[f]
		if strings.HasPrefix(f, changed+string(filepath.Separator)) {
			// The changed slide's grid outputs must all be new.
			base := filepath.Base(f)
			if (base == "coords.h5" || base == "anchors.h5" || filepath.Base(filepath.Dir(f)) == "features") && a.sum == b.sum {
				t.Errorf("%s was not recomputed after the grid changed", f)
			}
		}
	}
	if !equalStamps(t, before, after, other+string(filepath.Separator)) {
		t.Errorf("rerunning %s alone touched %s's outputs", changed, other)
	}
	if b, _ := os.ReadFile(w.StateJSON(other)); !bytes.Equal(b, otherState) {
		t.Errorf("rerunning %s alone rewrote %s's state.json", changed, other)
	}
	checkNothingHalfDone(t, work)
}

// equalStamps compares the files under prefix ("" for all), reporting each
// difference in checksum or mtime.
func equalStamps(t *testing.T, before, after map[string]fileStamp, prefix string) bool {
	t.Helper()
	ok := true
	for f, b := range before {
		if !strings.HasPrefix(f, prefix) {
			continue
		}
		a, found := after[f]
		switch {
		case !found:
			t.Errorf("%s disappeared", f)
			ok = false
		case a.sum != b.sum:
			t.Errorf("%s: content changed", f)
			ok = false
		case !a.mod.Equal(b.mod):
			t.Errorf("%s: rewritten (mtime %v → %v)", f, b.mod, a.mod)
			ok = false
		}
	}
	for f := range after {
		if _, found := before[f]; strings.HasPrefix(f, prefix) && !found {
			t.Errorf("%s appeared", f)
			ok = false
		}
	}
	return ok
}
