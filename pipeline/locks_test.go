package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The slide locks live at WORK/slides/<id>/.lock and are named after the
// slide; bad ids are refused.
func TestLockSlidePath(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	l, err := AcquireLock(work, "S1", LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.Path() != work.LockPath("S1") || work.LockPath("S1") != filepath.Join(work.Dir, "slides", "S1", ".lock") || l.Info().Name != "slide S1" {
		t.Errorf("lock %s named %q", l.Path(), l.Info().Name)
	}
	_, err = AcquireLock(work, "S1", LockOptions{})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || !strings.Contains(err.Error(), "slide S1: locked by another process "+l.Info().Holder) {
		t.Errorf("second acquire: %v", err)
	}
	for _, id := range []string{"../x", "", ".hidden"} {
		if _, err := AcquireLock(work, id, LockOptions{}); err == nil || errors.Is(err, ErrLocked) {
			t.Errorf("bad id %q: %v", id, err)
		}
	}
}

// LockSlides keeps the inputs it holds in order and reports the others as
// lock results: skipped with the holder when a live process holds them,
// failed when they cannot be locked at all.
func TestLockSlides(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	if err := os.MkdirAll(work.SlideDir("S2"), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b, _ := json.Marshal(LockInfo{Holder: "otherhost:9", Host: "otherhost", PID: 9, Name: "slide S2", Started: now, Heartbeat: now, Token: "0123456789abcdef"})
	if err := os.WriteFile(work.LockPath("S2"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ins := []Input{{ID: "S1", Path: "/x/S1.svs"}, {ID: "S2", Path: "/x/S2.svs"}, {ID: "../bad", Path: "/x/bad.svs"}, {ID: "S3", Path: "/x/S3.svs"}}
	ls, held, notHeld := LockSlides(context.Background(), work, ins, LockOptions{})
	defer ls.Release()
	if !slices.Equal(held, []Input{ins[0], ins[3]}) || ls.Len() != 2 {
		t.Fatalf("held %v (%d locks)", held, ls.Len())
	}
	if _, err := AcquireLock(work, "S3", LockOptions{}); !errors.Is(err, ErrLocked) {
		t.Errorf("S3 not locked: %v", err)
	}
	if len(notHeld) != 2 {
		t.Fatalf("not held %+v", notHeld)
	}
	if r := notHeld[0]; r.ID != "S2" || r.Path != ins[1].Path || r.Stage != StageLock || !r.Skipped || r.Err != nil || !strings.Contains(r.Reason, "otherhost:9") {
		t.Errorf("S2: %+v", r)
	}
	if r := notHeld[1]; r.ID != "../bad" || r.Stage != StageLock || r.Skipped || r.Err == nil {
		t.Errorf("bad id: %+v", r)
	}
	if err := ls.Release(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"S1", "S3"} {
		if _, err := os.Stat(work.LockPath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not released: %v", id, err)
		}
	}
}

func TestShardInputs(t *testing.T) {
	var in []Input
	for _, id := range []string{"S1", "S2", "slide-00001", "TCGA-A2-A0CX-01Z-00-DX1", "case 7 (HE)"} {
		in = append(in, Input{ID: id, Path: "/x/" + id + ".svs"})
	}
	for _, sh := range []Shard{{}, {Index: 0, Count: 1}} {
		if got := ShardInputs(sh, in); !slices.Equal(got, in) {
			t.Errorf("%v: %v", sh, got)
		}
	}
	sh, err := ParseShard("7/16") // S2 and TCGA-A2-A0CX-01Z-00-DX1 (TestShardOfPinned)
	if err != nil {
		t.Fatal(err)
	}
	if got := ShardInputs(sh, in); !slices.Equal(got, []Input{in[1], in[3]}) {
		t.Errorf("%v: %v", sh, got)
	}
}
