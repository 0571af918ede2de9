// Package slidelock keeps several processes sharing a work folder (a
// Slurm array, a Kubernetes Indexed Job, two people) off each other's
// work: lock files with a heartbeat, taken over when their holder is dead,
// and shards, fixed shares of a batch chosen by a hash of each item's id.
//
// It knows lock file paths, names and ids, nothing of what is locked: the
// pipeline locks slide <id> at WORK/slides/<id>/.lock and guards
// WORK/predictions.csv with WORK/.predictions.lock.
//
// # Lock files
//
// A lock file is created with O_CREATE|O_EXCL (atomic on local file
// systems and on NFSv3+) and holds JSON (Info): holder ("host:pid"), host,
// pid, pid namespace, boot id, started, heartbeat and a random token
// naming this acquisition. The holder refreshes the heartbeat (a Set does
// it in one goroutine) and removes the file when it is done.
//
// A lock is stale, and is taken over, when its heartbeat is older than
// Options.StaleAfter, or when it was written on this machine (same host
// name, boot id and pid namespace) by a process that no longer exists.
// Host clocks must agree to well within StaleAfter.
//
// Everything that changes or removes an existing lock file (taking over a
// stale lock, Refresh, Release) first takes a short-lived guard, the lock
// path plus ".guard" (also O_EXCL), and re-reads the lock under it: a
// stale lock is removed only if its bytes are still those that were judged
// stale, and Refresh/Release touch it only while it still carries their
// token. So two processes recovering the same stale lock cannot both win,
// and a recoverer cannot delete a lock that was just re-taken. A guard is
// held for milliseconds; one older than guardStaleAfter (its writer died
// inside that window) is broken by renaming it to a unique name and
// checking that the renamed bytes are the ones judged stale.
//
// What no lock file can prevent: a holder that stops for longer than
// StaleAfter (SIGSTOP, a hung mount) is declared dead and its lock
// re-taken; when it resumes, its next Refresh reports ErrLockLost and a
// Set cancels its context.
package slidelock

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

const (
	// DefaultStaleAfter is Options.StaleAfter when it is zero.
	DefaultStaleAfter = 10 * time.Minute

	guardSuffix     = ".guard"   // .lock.guard
	refreshSuffix   = ".refresh" // .lock.refresh, written under the guard
	guardStaleAfter = 30 * time.Second
	guardWait       = 2 * guardStaleAfter
	maxLockBytes    = 64 << 10
)

// ErrLocked is wrapped (through *LockedError) by Acquire when another
// live process holds the lock.
var ErrLocked = errors.New("locked by another process")

// ErrLockLost is wrapped by Refresh and Release when the lock file is gone
// or belongs to someone else (this holder was declared dead and the lock
// taken over).
var ErrLockLost = errors.New("lock lost")

// Options tunes lock acquisition.
type Options struct {
	// StaleAfter is how old a heartbeat may get before the lock is taken
	// over (0: DefaultStaleAfter). Holders must refresh well within it.
	StaleAfter time.Duration
	// Heartbeat is how often a Set refreshes its locks (0: StaleAfter/4).
	Heartbeat time.Duration
	// Wait is how long to keep retrying a lock held by a live process
	// (0: give up at once with ErrLocked). Waiting longer than StaleAfter
	// lets a restarted task take over the locks of its dead predecessor on
	// another host.
	Wait time.Duration
}

func (o Options) staleAfter() time.Duration {
	if o.StaleAfter > 0 {
		return o.StaleAfter
	}
	return DefaultStaleAfter
}

func (o Options) heartbeat() time.Duration {
	if o.Heartbeat > 0 {
		return o.Heartbeat
	}
	return o.staleAfter() / 4
}

// poll is the pause between two tries while waiting for a held lock.
func (o Options) poll() time.Duration {
	return min(max(o.Wait/20, 5*time.Millisecond), 2*time.Second)
}

// nextPause is LockAll's pause before its next round of tries, after a
// pause of prev (0: none yet): poll() at first, doubling up to Wait/20 but
// at most 30 s. A retried array task waits out the stale time (10 min) of
// the locks its killed predecessor left on the shared file system: it then
// reads each of those lock files about 25 times instead of 330 (every
// 2 s). Waits under 40 s are unchanged.
func (o Options) nextPause(prev time.Duration) time.Duration {
	if prev <= 0 {
		return o.poll()
	}
	return min(2*prev, max(o.poll(), min(o.Wait/20, 30*time.Second)))
}

// Info is the content of a lock file.
type Info struct {
	Holder    string    `json:"holder"` // host:pid
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	PIDNS     string    `json:"pidns,omitempty"` // Linux pid namespace, e.g. "pid:[4026531836]"
	Boot      string    `json:"boot,omitempty"`  // Linux boot id: tells apart machines with one host name
	Name      string    `json:"name"`            // what is locked, e.g. "slide S1"
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Token     string    `json:"token"` // random, one per acquisition
}

// LockedError says who holds a lock. It wraps ErrLocked.
type LockedError struct {
	Name string // what is locked, e.g. "slide S1"
	Path string // the lock file
	Info Info   // zero when the file could not be parsed (being written)
	Age  time.Duration
	Idle time.Duration // since the last heartbeat (or the file's mtime)
}

func (e *LockedError) Error() string {
	return "slidelock: " + e.Name + ": " + e.Reason()
}

// Reason is the error without the prefix: "locked by host:pid (…)".
func (e *LockedError) Reason() string {
	if e.Info.Token == "" {
		return fmt.Sprintf("%s: holder unknown (lock file %s being written or unreadable, modified %s ago)", ErrLocked, e.Path, roundAge(e.Idle))
	}
	return fmt.Sprintf("%s %s (for %s, heartbeat %s ago)", ErrLocked, e.Info.Holder, roundAge(e.Age), roundAge(e.Idle))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

func roundAge(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// Lock is a held lock. Refresh and Release may be called from different
// goroutines; after Release the Lock is dead.
type Lock struct {
	path string
	mu   sync.Mutex // serialises Refresh and Release
	info Info
	done bool // released or lost
}

// Info returns the lock's current content.
func (l *Lock) Info() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Acquire takes the lock file at path (its directory must exist). name
// says what it protects, in the lock file and in messages: "slide S1". When
// a live process holds it the error is a *LockedError naming the holder,
// which wraps ErrLocked; Acquire keeps retrying up to opt.Wait (or until
// ctx ends) before giving up.
func Acquire(ctx context.Context, path, name string, opt Options) (*Lock, error) {
	deadline := time.Now().Add(opt.Wait)
	for {
		l, err := tryLock(path, name, opt)
		var le *LockedError
		if err == nil || !errors.As(err, &le) || opt.Wait <= 0 || time.Now().After(deadline) {
			return l, err
		}
		if serr := sleepCtx(ctx, jitter(opt.poll())); serr != nil {
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, serr)
		}
	}
}

// WithLock runs fn while holding the lock file at path, waiting up to
// opt.Wait for another holder; for short read-modify-write sections such as
// merging rows into WORK/predictions.csv (no heartbeat: fn must take well
// under opt.StaleAfter). It returns fn's error joined with Release's.
func WithLock(ctx context.Context, path, name string, opt Options, fn func() error) error {
	l, err := Acquire(ctx, path, name, opt)
	if err != nil {
		return err
	}
	ferr := fn()
	return errors.Join(ferr, l.Release())
}

// tryLock makes one attempt, taking over a stale lock on the way.
func tryLock(path, name string, opt Options) (*Lock, error) {
	me := self()
	for range 10 {
		now := time.Now()
		info := Info{
			Holder: me.holder(), Host: me.host, PID: me.pid, PIDNS: me.pidns, Boot: me.boot, Name: name,
			Started: now, Heartbeat: now, Token: newToken(),
		}
		err := createLock(path, info)
		if err == nil {
			return &Lock{path: path, info: info}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("slidelock: %s: lock: %w", name, err)
		}
		raw, mtime, err := readLockFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released in between
		}
		if err != nil {
			return nil, fmt.Errorf("slidelock: %s: lock: %w", name, err)
		}
		held, why := judgeLock(raw, mtime, opt.staleAfter(), me)
		if why == "" {
			held.Name, held.Path = name, path
			return nil, held
		}
		ok, err := removeStale(path, raw)
		if err != nil {
			return nil, fmt.Errorf("slidelock: %s: recover stale lock: %w", name, err)
		}
		if ok {
			slog.Warn("took over a stale lock", "lock", path, "holder", held.Info.Holder, "why", why)
		}
	}
	return nil, fmt.Errorf("slidelock: %s: lock %s keeps changing; gave up", name, path)
}

// createLock makes path with O_EXCL and writes info into it, fsync'd.
func createLock(path string, info Info) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(info)
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path) // ours: O_EXCL created it and it is too fresh to be taken over
		return err
	}
	return nil
}

func readLockFile(path string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLockBytes))
	return b, fi.ModTime(), err
}

func parseLock(raw []byte) (Info, bool) {
	var info Info
	if json.Unmarshal(raw, &info) != nil || info.Token == "" {
		return Info{}, false
	}
	return info, true
}

// judgeLock reads a lock file's bytes: why is empty when it is live, else
// the reason it is stale.
func judgeLock(raw []byte, mtime time.Time, staleAfter time.Duration, me proc) (held *LockedError, why string) {
	now := time.Now()
	info, ok := parseLock(raw)
	if !ok { // being written (empty) or garbage: only its age counts
		idle := now.Sub(mtime)
		held = &LockedError{Idle: idle, Age: idle}
		if idle > staleAfter {
			return held, fmt.Sprintf("unreadable lock file not modified for %s", roundAge(idle))
		}
		return held, ""
	}
	held = &LockedError{Info: info, Age: now.Sub(info.Started), Idle: now.Sub(info.Heartbeat)}
	switch {
	case held.Idle > staleAfter:
		return held, fmt.Sprintf("heartbeat %s ago (stale after %s)", roundAge(held.Idle), staleAfter)
	case me.sameHost(info) && info.PID > 0 && info.PID != me.pid && !pidAlive(info.PID):
		return held, fmt.Sprintf("process %d on this host is gone", info.PID)
	}
	return held, ""
}

// removeStale removes the lock file at path if it still holds exactly raw.
// It reports whether it removed it; false with no error means the lock
// changed (refreshed, released, taken over by someone else) meanwhile.
func removeStale(path string, raw []byte) (bool, error) {
	g, err := takeGuard(path + guardSuffix)
	if err != nil {
		return false, err
	}
	defer g.release()
	cur, _, err := readLockFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !bytes.Equal(cur, raw) {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, atomicfile.SyncDir(filepath.Dir(path))
}

// Refresh records a new heartbeat (temp file, fsync, rename over the lock,
// under the guard). It wraps ErrLockLost when the lock is no longer ours.
func (l *Lock) Refresh() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return fmt.Errorf("slidelock: %s: refresh: %w (released)", l.info.Name, ErrLockLost)
	}
	g, err := takeGuard(l.path + guardSuffix)
	if err != nil {
		return fmt.Errorf("slidelock: %s: refresh lock: %w", l.info.Name, err)
	}
	defer g.release()
	if err := l.stillOurs(); err != nil {
		l.done = true
		return err
	}
	info := l.info
	info.Heartbeat = time.Now()
	b, _ := json.Marshal(info)
	tmp := l.path + refreshSuffix // only the guard holder writes it
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("slidelock: %s: refresh lock: %w", l.info.Name, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("slidelock: %s: refresh lock: %w", l.info.Name, err)
	}
	l.info = info
	if err := atomicfile.SyncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("slidelock: %s: refresh lock: %w", l.info.Name, err)
	}
	return nil
}

// Release removes the lock file if it is still ours; otherwise it leaves
// it and wraps ErrLockLost. Releasing twice is a no-op.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	l.done = true
	g, err := takeGuard(l.path + guardSuffix)
	if err != nil {
		return fmt.Errorf("slidelock: %s: release lock: %w", l.info.Name, err)
	}
	defer g.release()
	if err := l.stillOurs(); err != nil {
		return err
	}
	if err := os.Remove(l.path); err != nil {
		return fmt.Errorf("slidelock: %s: release lock: %w", l.info.Name, err)
	}
	return atomicfile.SyncDir(filepath.Dir(l.path))
}

// stillOurs checks, under the guard, that the lock file carries our token.
func (l *Lock) stillOurs() error {
	raw, _, err := readLockFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("slidelock: %s: %w (lock file %s removed)", l.info.Name, ErrLockLost, l.path)
	}
	if err != nil {
		return fmt.Errorf("slidelock: %s: lock: %w", l.info.Name, err)
	}
	if cur, ok := parseLock(raw); !ok || cur.Token != l.info.Token {
		holder := "unknown"
		if ok {
			holder = cur.Holder
		}
		return fmt.Errorf("slidelock: %s: %w (now held by %s)", l.info.Name, ErrLockLost, holder)
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// guard is a held .lock.guard file.
type guard struct {
	path string
	raw  []byte
}

type guardInfo struct {
	Holder string    `json:"holder"`
	Time   time.Time `json:"time"`
	Token  string    `json:"token"`
}

// takeGuard creates path with O_EXCL, waiting while another process holds
// it (for milliseconds, normally) and breaking it when it is older than
// guardStaleAfter.
func takeGuard(path string) (*guard, error) {
	deadline := time.Now().Add(guardWait)
	for {
		raw, _ := json.Marshal(guardInfo{Holder: self().holder(), Time: time.Now(), Token: newToken()})
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.Write(raw)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
				return nil, err
			}
			return &guard{path: path, raw: raw}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		cur, mtime, err := readLockFile(path)
		if err == nil {
			var gi guardInfo
			written := mtime
			if json.Unmarshal(cur, &gi) == nil && gi.Token != "" {
				written = gi.Time
			}
			if time.Since(written) > guardStaleAfter {
				breakGuard(path, cur)
				continue
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("guard %s held for more than %s", path, guardWait)
		}
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Microsecond)
	}
}

// breakGuard removes a stale guard if it still holds raw: it renames the
// guard to a unique name (only one process can rename a given file), and
// puts it back if the renamed bytes are not the ones judged stale.
func breakGuard(path string, raw []byte) {
	moved := path + ".broken-" + newToken()
	if os.Rename(path, moved) != nil {
		return // gone already
	}
	if cur, err := os.ReadFile(moved); err == nil && !bytes.Equal(cur, raw) {
		_ = os.Link(moved, path) // a live guard: put it back unless a new one exists
	} else {
		slog.Warn("broke a stale lock guard", "guard", path)
	}
	os.Remove(moved)
}

// release removes the guard if it is still ours.
func (g *guard) release() {
	if cur, err := os.ReadFile(g.path); err == nil && bytes.Equal(cur, g.raw) {
		os.Remove(g.path)
	}
}

// proc identifies this process in lock files.
type proc struct {
	host, boot, pidns string
	pid               int
}

func (p proc) holder() string {
	if p.host == "" {
		return "?:" + strconv.Itoa(p.pid)
	}
	return p.host + ":" + strconv.Itoa(p.pid)
}

// sameHost reports whether a lock's pid means a process of this machine
// and pid namespace: same host name, boot id (where known) and namespace.
// Only then can "no such process" declare its holder dead.
func (p proc) sameHost(info Info) bool {
	return p.host != "" && info.Host == p.host && info.Boot == p.boot && info.PIDNS == p.pidns
}

var self = sync.OnceValue(func() proc {
	host, _ := os.Hostname()                                  // "" disables the pid check
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id") // Linux; not namespaced
	ns, _ := os.Readlink("/proc/self/ns/pid")                 // Linux
	return proc{host: host, boot: strings.TrimSpace(string(boot)), pidns: ns, pid: os.Getpid()}
})

// pidAlive reports whether a process exists; false only when the system
// says it does not (a process of another user counts as alive).
func pidAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	err = p.Signal(syscall.Signal(0))
	return !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}

func newToken() string {
	var b [8]byte
	_, _ = crand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
