package slidelock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/store"
)

// lockPath is dir/<id>/.lock, laid out like the pipeline's slide locks;
// it creates dir/<id>.
func lockPath(t testing.TB, dir, id string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, id, ".lock")
}

// acquire takes the lock of item id under dir, named as the pipeline names
// a slide's lock.
func acquire(t testing.TB, dir, id string, opt Options) (*Lock, error) {
	t.Helper()
	return Acquire(context.Background(), lockPath(t, dir, id), "slide "+id, opt)
}

// mustAcquire takes slide id's lock in dir with the default options; the
// test fails when it cannot.
func mustAcquire(t testing.TB, dir, id string) *Lock {
	t.Helper()
	l, err := acquire(t, dir, id, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeInfo puts a hand-made lock file in place, as another process
// would have left it.
func writeLockInfo(t testing.TB, dir, id string, info Info) {
	t.Helper()
	b, _ := json.Marshal(info)
	if err := os.WriteFile(lockPath(t, dir, id), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func foreignLock(host string, pid int, heartbeat time.Time) Info {
	return Info{Holder: host + ":" + strconv.Itoa(pid), Host: host, PID: pid, Name: "slide X",
		Started: heartbeat.Add(-time.Hour), Heartbeat: heartbeat, Token: "0123456789abcdef"}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	pid := cmd.Process.Pid
	if pidAlive(pid) {
		t.Skipf("pid %d reused already", pid)
	}
	return pid
}

func TestLockExclusive(t *testing.T) {
	dir := t.TempDir()
	a := mustAcquire(t, dir, "S1")
	info := a.Info()
	if info.Holder != self().holder() || info.PID != os.Getpid() || info.Token == "" || info.Name != "slide S1" {
		t.Errorf("lock info %+v", info)
	}
	var onDisk Info
	b, err := os.ReadFile(lockPath(t, dir, "S1"))
	if err != nil || json.Unmarshal(b, &onDisk) != nil || onDisk.Token != info.Token || !onDisk.Started.Equal(info.Started) {
		t.Fatalf("lock file %q (%v) does not hold %+v", b, err, info)
	}

	_, err = acquire(t, dir, "S1", Options{})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second acquire: %v, want ErrLocked", err)
	}
	if le.Info.Holder != info.Holder || !strings.Contains(err.Error(), "slide S1: locked by another process "+info.Holder) || !strings.Contains(err.Error(), "heartbeat") {
		t.Errorf("error %q does not name the holder %s", err, info.Holder)
	}
	if _, err := acquire(t, dir, "S2", Options{}); err != nil {
		t.Errorf("another slide: %v", err)
	}

	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	if _, err := os.Stat(lockPath(t, dir, "S1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left after release: %v", err)
	}
	b2, err := acquire(t, dir, "S1", Options{})
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if b2.Info().Token == info.Token {
		t.Error("token reused")
	}
	if err := b2.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath(t, dir, "S1") + guardSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("guard left behind: %v", err)
	}
}

func TestLockRefresh(t *testing.T) {
	dir := t.TempDir()
	l := mustAcquire(t, dir, "S1")
	before := l.Info()
	time.Sleep(5 * time.Millisecond)
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	var onDisk Info
	b, _ := os.ReadFile(lockPath(t, dir, "S1"))
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	if !onDisk.Heartbeat.After(before.Heartbeat) || !onDisk.Started.Equal(before.Started) || onDisk.Token != before.Token {
		t.Errorf("after refresh %+v, before %+v", onDisk, before)
	}
	if _, err := os.Stat(lockPath(t, dir, "S1") + refreshSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refresh temp left behind: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(); !errors.Is(err, ErrLockLost) {
		t.Errorf("refresh after release: %v", err)
	}
}

// A lock taken over by someone else is neither refreshed nor removed.
func TestLockLost(t *testing.T) {
	dir := t.TempDir()
	l := mustAcquire(t, dir, "S1")
	other := foreignLock("otherhost", 42, time.Now())
	writeLockInfo(t, dir, "S1", other)
	if err := l.Refresh(); !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "otherhost:42") {
		t.Errorf("refresh of a taken-over lock: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("release after a lost refresh: %v", err)
	}
	l2 := mustAcquire(t, dir, "S2")
	if err := os.Remove(lockPath(t, dir, "S2")); err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(); !errors.Is(err, ErrLockLost) {
		t.Errorf("release of a removed lock: %v", err)
	}
	b, _ := os.ReadFile(lockPath(t, dir, "S1"))
	var got Info
	if json.Unmarshal(b, &got) != nil || got.Token != other.Token {
		t.Errorf("the other holder's lock was touched: %s", b)
	}
}

func TestLockStale(t *testing.T) {
	me := self()
	now := time.Now()
	for _, c := range []struct {
		name  string
		info  func(t *testing.T) Info
		opt   Options
		stale bool
	}{
		{"fresh, other host", func(*testing.T) Info { return foreignLock("otherhost", 1, now.Add(-time.Minute)) }, Options{}, false},
		{"old heartbeat, other host", func(*testing.T) Info { return foreignLock("otherhost", 1, now.Add(-11*time.Minute)) }, Options{}, true},
		{"StaleAfter honoured", func(*testing.T) Info { return foreignLock("otherhost", 1, now.Add(-time.Minute)) }, Options{StaleAfter: 30 * time.Second}, true},
		{"dead pid, this host", func(t *testing.T) Info {
			l := foreignLock(me.host, deadPID(t), now)
			l.PIDNS, l.Boot = me.pidns, me.boot
			return l
		}, Options{}, true},
		{"dead pid, other pid namespace", func(t *testing.T) Info {
			l := foreignLock(me.host, deadPID(t), now)
			l.PIDNS, l.Boot = "pid:[1]", me.boot
			return l
		}, Options{}, false},
		{"dead pid, same host name, other machine", func(t *testing.T) Info {
			l := foreignLock(me.host, deadPID(t), now)
			l.PIDNS, l.Boot = me.pidns, "another-boot-id"
			return l
		}, Options{}, me.boot == ""},
		{"live pid, this host", func(*testing.T) Info {
			l := foreignLock(me.host, os.Getppid(), now)
			l.PIDNS, l.Boot = me.pidns, me.boot
			return l
		}, Options{}, false},
		{"this process, old heartbeat", func(*testing.T) Info {
			l := foreignLock(me.host, me.pid, now.Add(-time.Hour))
			l.PIDNS, l.Boot = me.pidns, me.boot
			return l
		}, Options{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLockInfo(t, dir, "S1", c.info(t))
			l, err := acquire(t, dir, "S1", c.opt)
			if c.stale {
				if err != nil {
					t.Fatalf("stale lock not recovered: %v", err)
				}
				if l.Info().PID != os.Getpid() {
					t.Errorf("new lock %+v", l.Info())
				}
				l.Release()
				return
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("live lock taken: %v", err)
			}
		})
	}
}

// An empty or garbled lock file counts as being written until its mtime
// is older than StaleAfter.
func TestLockUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "S1"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := lockPath(t, dir, "S1")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := acquire(t, dir, "S1", Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "holder unknown") {
		t.Fatalf("fresh empty lock: %v", err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	l, err := acquire(t, dir, "S1", Options{})
	if err != nil {
		t.Fatalf("old empty lock not recovered: %v", err)
	}
	l.Release()
}

// Many goroutines find the same stale lock at once: exactly one gets it.
func TestLockConcurrentRecovery(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		info := foreignLock("otherhost", 7, time.Now().Add(-time.Hour))
		if round%2 == 1 { // dead process on this host
			info = foreignLock(self().host, deadPID(t), time.Now())
			info.PIDNS, info.Boot = self().pidns, self().boot
		}
		writeLockInfo(t, dir, "S1", info)
		path := lockPath(t, dir, "S1")
		const n = 32
		var wg sync.WaitGroup
		start := make(chan struct{})
		var mu sync.Mutex
		var won []*Lock
		var errs []error
		for range n {
			wg.Go(func() {
				<-start
				l, err := Acquire(context.Background(), path, "slide S1", Options{})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won = append(won, l)
				} else if !errors.Is(err, ErrLocked) {
					errs = append(errs, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 || len(errs) > 0 {
			t.Fatalf("round %d: %d winners, errors %v", round, len(won), errs)
		}
		b, _ := os.ReadFile(lockPath(t, dir, "S1"))
		var got Info
		if json.Unmarshal(b, &got) != nil || got.Token != won[0].Info().Token {
			t.Fatalf("round %d: lock file %s is not the winner's", round, b)
		}
		if err := won[0].Release(); err != nil {
			t.Fatal(err)
		}
		left, _ := filepath.Glob(filepath.Join(dir, "S1", ".lock*"))
		if len(left) > 0 {
			t.Fatalf("round %d: left behind %v", round, left)
		}
	}
}

// A guard left by a process that died inside it is broken after
// guardStaleAfter; a fresh one is waited for.
func TestLockStaleGuard(t *testing.T) {
	dir := t.TempDir()
	writeLockInfo(t, dir, "S1", foreignLock("otherhost", 7, time.Now().Add(-time.Hour)))
	g, _ := json.Marshal(guardInfo{Holder: "otherhost:7", Time: time.Now().Add(-time.Hour), Token: "feedfacefeedface"})
	if err := os.WriteFile(lockPath(t, dir, "S1")+guardSuffix, g, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := acquire(t, dir, "S1", Options{})
	if err != nil {
		t.Fatalf("stale guard not broken: %v", err)
	}
	// A live guard (another process mid-refresh) delays Release until it goes.
	live, err := takeGuard(l.Path() + guardSuffix)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(30*time.Millisecond, live.release)
	t0 := time.Now()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 25*time.Millisecond {
		t.Errorf("release did not wait for the live guard (%s)", d)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "S1", ".lock*"))
	if len(left) > 0 {
		t.Errorf("left behind %v", left)
	}
}

func TestLockWait(t *testing.T) {
	dir := t.TempDir()
	a := mustAcquire(t, dir, "S1")
	if _, err := acquire(t, dir, "S1", Options{Wait: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("short wait: %v", err)
	}
	time.AfterFunc(100*time.Millisecond, func() { a.Release() })
	b, err := acquire(t, dir, "S1", Options{Wait: 5 * time.Second})
	if err != nil {
		t.Fatalf("wait for release: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, lockPath(t, dir, "S1"), "slide S1", Options{Wait: time.Hour}); !errors.Is(err, ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	b.Release()
}

// targets are the locks of items ids under dir, as LockAll takes them.
func targets(t testing.TB, dir string, ids ...string) []Target {
	t.Helper()
	var ts []Target
	for _, id := range ids {
		ts = append(ts, Target{Name: "slide " + id, Path: lockPath(t, dir, id)})
	}
	return ts
}

// The set's heartbeat keeps its locks fresh past StaleAfter, and a lock
// taken over by another process cancels the set's context.
func TestLockSetHeartbeat(t *testing.T) {
	dir := t.TempDir()
	ts := targets(t, dir, "S1", "S2", "S3")
	writeLockInfo(t, dir, "S3", foreignLock("otherhost", 9, time.Now()))
	opt := Options{StaleAfter: 300 * time.Millisecond, Heartbeat: 20 * time.Millisecond}
	ls, errs := LockAll(context.Background(), ts, opt)
	defer ls.Release()
	if len(errs) != 3 || errs[0] != nil || errs[1] != nil || ls.Len() != 2 {
		t.Fatalf("errors %v, %d held", errs, ls.Len())
	}
	var le *LockedError
	if !errors.As(errs[2], &le) || !errors.Is(errs[2], ErrLocked) || le.Name != "slide S3" || le.Path != ts[2].Path || !strings.Contains(le.Reason(), "otherhost:9") {
		t.Fatalf("S3: %v", errs[2])
	}
	time.Sleep(2 * opt.StaleAfter)
	// Same process, so only the heartbeat's age can make it stale.
	if _, err := acquire(t, dir, "S1", opt); !errors.Is(err, ErrLocked) {
		t.Fatalf("heartbeat did not keep the lock: %v", err)
	}
	// Another process takes S2 over, as removeStale and O_EXCL would: under
	// the guard, so that no refresh is in flight.
	g, err := takeGuard(lockPath(t, dir, "S2") + guardSuffix)
	if err != nil {
		t.Fatal(err)
	}
	writeLockInfo(t, dir, "S2", foreignLock("otherhost", 10, time.Now()))
	g.release()
	select {
	case <-ls.Context().Done():
		if !errors.Is(context.Cause(ls.Context()), ErrLockLost) {
			t.Fatalf("cause %v", context.Cause(ls.Context()))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost lock did not cancel the context")
	}
	err = ls.Release()
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "slide S2") {
		t.Fatalf("release: %v", err)
	}
	if _, err := os.Stat(lockPath(t, dir, "S1")); !errors.Is(err, os.ErrNotExist) {
		t.Error("S1 not released")
	}
	if _, err := os.Stat(lockPath(t, dir, "S2")); err != nil {
		t.Error("the other holder's S2 lock was removed")
	}
}

func TestLockAllWait(t *testing.T) {
	dir := t.TempDir()
	ts := targets(t, dir, "S1", "S2")
	other := mustAcquire(t, dir, "S2")
	time.AfterFunc(100*time.Millisecond, func() { other.Release() })
	ls, errs := LockAll(context.Background(), ts, Options{Wait: 5 * time.Second})
	defer ls.Release()
	if ls.Len() != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("%d held, errors %v", ls.Len(), errs)
	}
}

// A cancelled context leaves the rest untried, each with the cause.
func TestLockAllCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ls, errs := LockAll(ctx, targets(t, dir, "S1", "S2"), Options{})
	defer ls.Release()
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "not locked") {
			t.Errorf("target %d: %v", i, err)
		}
	}
	if ls.Len() != 0 || ls.Context().Err() == nil {
		t.Errorf("%d held, context %v", ls.Len(), ls.Context().Err())
	}
}

// A read-modify-write of one file under WithLock loses no update.
func TestWithLock(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "counter")
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := WithLock(context.Background(), filepath.Join(dir, ".counter.lock"), "counter", Options{Wait: 10 * time.Second}, func() error {
				b, _ := os.ReadFile(counter)
				v, _ := strconv.Atoi(string(b))
				time.Sleep(time.Millisecond)
				return store.WriteFileAtomic(counter, []byte(strconv.Itoa(v+1)), 0o644)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if b, _ := os.ReadFile(counter); string(b) != strconv.Itoa(n) {
		t.Fatalf("counter %s, want %d", b, n)
	}
	want := errors.New("boom")
	if err := WithLock(context.Background(), filepath.Join(dir, ".counter.lock"), "counter", Options{}, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("fn error lost: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".counter.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("lock not released")
	}
}

// Multi-process test: helper processes (this test binary run again) work
// on one folder of slides. Each takes a slide's lock, and if the slide is not
// done appends its pid to done.log, pauses, writes the done marker and
// releases. Every slide must be done exactly once, whether all processes
// try every slide (the locks decide) or each takes a shard.

const helperEnv = "HER2WSI_LOCK_HELPER"

func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper for TestLockProcesses")
	}
	dir := os.Getenv("HELPER_DIR")
	var sh Shard
	if err := sh.Set(os.Getenv("HELPER_SHARD")); err != nil {
		t.Fatal(err)
	}
	ids := sh.Filter(strings.Split(os.Getenv("HELPER_IDS"), ","))
	for { // start together
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	doSlide := func(id string) {
		done := filepath.Join(dir, id, "done")
		if _, err := os.Stat(done); err == nil {
			return
		}
		f, err := os.OpenFile(filepath.Join(dir, id, "done.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Close()
		time.Sleep(3 * time.Millisecond)
		if err := store.WriteFileAtomic(done, []byte("ok\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	switch mode := os.Getenv("HELPER_MODE"); mode {
	case "each": // one lock at a time
		for _, id := range ids {
			l, err := acquire(t, dir, id, Options{})
			if errors.Is(err, ErrLocked) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			doSlide(id)
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		}
	case "set": // all the slides it can get, for the whole run
		ls, errs := LockAll(context.Background(), targets(t, dir, ids...), Options{})
		for i, err := range errs {
			switch {
			case err == nil:
				doSlide(ids[i])
			case !errors.Is(err, ErrLocked):
				t.Fatal(err)
			}
		}
		if err := ls.Release(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("mode %q", mode)
	}
}

func TestLockProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const procs, nSlides = 4, 40
	var ids []string
	for i := range nSlides {
		ids = append(ids, fmt.Sprintf("slide-%02d", i))
	}
	for _, c := range []struct {
		mode    string
		sharded bool
	}{{"each", false}, {"set", false}, {"each", true}, {"set", true}} {
		t.Run(fmt.Sprintf("%s/sharded=%v", c.mode, c.sharded), func(t *testing.T) {
			dir := t.TempDir()
			// A few slides start with stale locks left by dead holders.
			for i, id := range ids {
				switch i % 10 {
				case 3:
					writeLockInfo(t, dir, id, foreignLock("otherhost", 5, time.Now().Add(-time.Hour)))
				case 7:
					l := foreignLock(self().host, deadPID(t), time.Now())
					l.PIDNS, l.Boot = self().pidns, self().boot
					writeLockInfo(t, dir, id, l)
				}
			}
			shardOf := map[int]int{} // pid → shard index
			var cmds []*exec.Cmd
			var outs []*strings.Builder
			for p := range procs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
				shard := ""
				if c.sharded {
					shard = fmt.Sprintf("%d/%d", p, procs)
				}
				cmd.Env = append(os.Environ(), helperEnv+"=1", "HELPER_DIR="+dir, "HELPER_SHARD="+shard,
					"HELPER_IDS="+strings.Join(ids, ","), "HELPER_MODE="+c.mode)
				out := new(strings.Builder)
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				shardOf[cmd.Process.Pid] = p
				cmds = append(cmds, cmd)
				outs = append(outs, out)
			}
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
				}
			}
			byPID := map[int]int{}
			for _, id := range ids {
				f, err := os.Open(filepath.Join(dir, id, "done.log"))
				if err != nil {
					t.Errorf("%s never done: %v", id, err)
					continue
				}
				var pids []int
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					pid, _ := strconv.Atoi(sc.Text())
					pids = append(pids, pid)
				}
				f.Close()
				if len(pids) != 1 {
					t.Errorf("%s done %d times (by %v)", id, len(pids), pids)
					continue
				}
				byPID[pids[0]]++
				if c.sharded && shardOf[pids[0]] != ShardOf(id, procs) {
					t.Errorf("%s (shard %d) done by shard %d", id, ShardOf(id, procs), shardOf[pids[0]])
				}
				left, _ := filepath.Glob(filepath.Join(dir, id, ".lock*"))
				if len(left) > 0 {
					t.Errorf("%s: left behind %v", id, left)
				}
			}
			counts := slices.Collect(func(yield func(int) bool) {
				for _, n := range byPID {
					if !yield(n) {
						return
					}
				}
			})
			t.Logf("slides per process: %v", counts)
		})
	}
}

// LockAll's retry rounds back off on long waits (a retried task waiting
// out its predecessor's stale locks on a shared file system) and keep
// their pace on short ones.
func TestLockAllPauses(t *testing.T) {
	for _, c := range []struct {
		wait         time.Duration
		first, most  time.Duration
		rounds, fast int // rounds over the whole wait (mean pauses); with poll() every round
	}{
		{5 * time.Second, 250 * time.Millisecond, 250 * time.Millisecond, 20, 20},
		{40 * time.Second, 2 * time.Second, 2 * time.Second, 20, 20},
		{11 * time.Minute, 2 * time.Second, 30 * time.Second, 25, 330},
		{time.Hour, 2 * time.Second, 30 * time.Second, 123, 1800},
	} {
		o := Options{Wait: c.wait}
		var pause, slept, most time.Duration
		rounds := 0
		for slept < c.wait {
			pause = o.nextPause(pause)
			if rounds == 0 && pause != c.first {
				t.Errorf("wait %s: first pause %s, want %s", c.wait, pause, c.first)
			}
			most = max(most, pause)
			slept += pause
			rounds++
		}
		if most != c.most || rounds != c.rounds || int(c.wait/o.poll()) != c.fast {
			t.Errorf("wait %s: %d rounds (every poll(): %d), longest pause %s; want %d (%d), %s",
				c.wait, rounds, int(c.wait/o.poll()), most, c.rounds, c.fast, c.most)
		}
	}
}
