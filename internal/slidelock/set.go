package slidelock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Set holds the locks of a batch (LockAll) and refreshes them from one
// goroutine, which it owns: Release stops it, then releases every lock.
type Set struct {
	opt    Options
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	locks    []*Lock
	lost     []error // ErrLockLost from the heartbeat, for Release
	released bool
}

func newSet(ctx context.Context, opt Options) *Set {
	s := &Set{opt: opt, stop: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	go s.heartbeat()
	return s
}

// Context is LockAll's ctx, also cancelled, with a cause wrapping
// ErrLockLost, when another process has taken over one of the locks (this
// process was judged dead): do the locked work under it.
func (s *Set) Context() context.Context { return s.ctx }

// Len is the number of locks held.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks)
}

func (s *Set) add(l *Lock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locks = append(s.locks, l)
}

// drop forgets a lost lock, keeping its error for Release.
func (s *Set) drop(l *Lock, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.locks {
		if x == l {
			s.locks = append(s.locks[:i:i], s.locks[i+1:]...)
			break
		}
	}
	s.lost = append(s.lost, err)
}

func (s *Set) heartbeat() {
	defer close(s.done)
	t := time.NewTicker(s.opt.heartbeat())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		locks := append([]*Lock(nil), s.locks...)
		s.mu.Unlock()
		for _, l := range locks {
			select {
			case <-s.stop:
				return
			default:
			}
			err := l.Refresh()
			switch {
			case errors.Is(err, ErrLockLost):
				slog.Error(err.Error(), "lock", l.path)
				s.drop(l, err)
				s.cancel(err)
			case err != nil:
				slog.Warn(err.Error(), "lock", l.path) // transient (a slow mount): try again next tick
			}
		}
	}
}

// Release stops the heartbeat and releases every lock; it returns their
// errors joined (ErrLockLost for locks taken over meanwhile). It cancels
// Context. Calling it again is a no-op.
func (s *Set) Release() error {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return nil
	}
	s.released = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done // the heartbeat has stopped: locks and lost are ours now
	errs := s.lost
	for _, l := range s.locks {
		if err := l.Release(); err != nil {
			errs = append(errs, err)
		}
	}
	s.cancel(context.Canceled)
	return errors.Join(errs...)
}

// Target is one lock of a batch for LockAll.
type Target struct {
	Name string // what the lock protects, in the lock file and messages: "slide S1"
	Path string // the lock file; its directory must exist
}

// LockAll takes every lock of targets it can and returns the set of locks
// (refreshed by its goroutine from now on) and one error per target, in
// order: nil when the set holds it, a *LockedError (wrapping ErrLocked)
// naming the holder when a live process holds it, another error when it
// could not be tried. With opt.Wait it keeps retrying the held ones (all
// of them in each round) until they are free or stale or Wait has passed.
// The caller must Release the set.
func LockAll(ctx context.Context, targets []Target, opt Options) (*Set, []error) {
	s := newSet(ctx, opt)
	errs := make([]error, len(targets))
	pending := make([]int, len(targets))
	for i := range pending {
		pending[i] = i
	}
	deadline := time.Now().Add(opt.Wait)
	var pause time.Duration
	for {
		var again []int
		for _, i := range pending {
			t := targets[i]
			if err := ctx.Err(); err != nil {
				errs[i] = fmt.Errorf("slidelock: %s: not locked: %w", t.Name, context.Cause(ctx))
				continue
			}
			l, err := tryLock(t.Path, t.Name, Options{StaleAfter: opt.StaleAfter})
			errs[i] = err
			var le *LockedError
			switch {
			case err == nil:
				s.add(l)
			case errors.As(err, &le):
				again = append(again, i)
			}
		}
		pending = again
		pause = opt.nextPause(pause)
		if len(pending) == 0 || opt.Wait <= 0 || time.Now().After(deadline) || sleepCtx(ctx, jitter(pause)) != nil {
			break
		}
	}
	return s, errs
}
