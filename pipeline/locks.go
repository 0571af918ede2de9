package pipeline

// Slide locks and shards: internal/slidelock does the work; this file maps
// slides onto it (the lock of slide <id> is WORK/slides/<id>/.lock) and
// keeps the names the rest of the code uses.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/her2wsi/her2wsi/internal/slidelock"
)

// StageLock is the Stage of the results LockSlides reports for slides it
// could not lock.
const StageLock = "lock"

// The names the pipeline, its commands and the watcher use for slidelock's.
type (
	// LockOptions tunes lock acquisition (Runner.Lock).
	LockOptions = slidelock.Options
	// LockInfo is the content of a lock file.
	LockInfo = slidelock.Info
	// LockedError says who holds a lock; it wraps ErrLocked.
	LockedError = slidelock.LockedError
	// Shard is a --shard i/n share of the slides (flag.Value via *Shard).
	Shard = slidelock.Shard
)

// DefaultStaleAfter is how old a lock's heartbeat may get by default
// before another process takes the lock over.
const DefaultStaleAfter = slidelock.DefaultStaleAfter

var (
	// ErrLocked: another live process holds the lock.
	ErrLocked = slidelock.ErrLocked
	// ErrLockLost: another process took over a lock this one held.
	ErrLockLost = slidelock.ErrLockLost
)

// ParseShard reads a --shard value "i/n": see slidelock.ParseShard.
func ParseShard(s string) (Shard, error) { return slidelock.ParseShard(s) }

// ShardInputs returns the inputs the shard owns, in their order; the zero
// Shard returns in itself.
func ShardInputs(s Shard, in []Input) []Input {
	if s.All() {
		return in
	}
	var out []Input
	for _, x := range in {
		if s.Owns(x.ID) {
			out = append(out, x)
		}
	}
	return out
}

// slideLock is what slidelock needs to lock slide id, after checking the
// id and creating WORK/slides/<id>.
func slideLock(work Work, id string) (slidelock.Target, error) {
	if err := ValidID(id); err != nil {
		return slidelock.Target{}, fmt.Errorf("pipeline: lock: %w", err)
	}
	if err := os.MkdirAll(work.SlideDir(id), 0o755); err != nil {
		return slidelock.Target{}, fmt.Errorf("pipeline: slide %s: lock: %w", id, err)
	}
	return slidelock.Target{Name: "slide " + id, Path: work.LockPath(id)}, nil
}

// AcquireLock takes the lock of one slide (creating WORK/slides/<id> if
// needed). When a live process holds it the error wraps ErrLocked (as a
// *LockedError naming the holder) unless opt.Wait lets it wait.
func AcquireLock(work Work, id string, opt LockOptions) (*slidelock.Lock, error) {
	t, err := slideLock(work, id)
	if err != nil {
		return nil, err
	}
	return slidelock.Acquire(context.Background(), t.Path, t.Name, opt)
}

// WithFileLock runs fn while holding the lock file at path: see
// slidelock.WithLock.
func WithFileLock(ctx context.Context, path, name string, opt LockOptions, fn func() error) error {
	return slidelock.WithLock(ctx, path, name, opt, fn)
}

// LockSlides takes the lock of every input it can and returns the set of
// locks (already refreshed by its goroutine), the inputs it holds, in
// order, and one Result (Stage "lock") for each input it does not: Skipped
// with the holder as Reason when a live process holds it, Err for other
// failures. With opt.Wait it keeps retrying the held ones (all of them in
// each round) until they are free or stale or Wait has passed. The caller
// must Release the set.
func LockSlides(ctx context.Context, work Work, inputs []Input, opt LockOptions) (*slidelock.Set, []Input, []Result) {
	errs := make([]error, len(inputs))
	var targets []slidelock.Target
	var at []int // targets[k] is the lock of inputs[at[k]]
	for i, in := range inputs {
		t, err := slideLock(work, in.ID)
		if err != nil {
			errs[i] = err
			continue
		}
		targets = append(targets, t)
		at = append(at, i)
	}
	set, lerrs := slidelock.LockAll(ctx, targets, opt)
	for k, err := range lerrs {
		errs[at[k]] = err
	}
	var held []Input
	var notHeld []Result
	for i, in := range inputs {
		var le *LockedError
		switch err := errs[i]; {
		case err == nil:
			held = append(held, in)
		case errors.As(err, &le):
			slog.Info("slide locked by another process: skipped", "slide", in.ID, "stage", StageLock, "holder", le.Info.Holder)
			notHeld = append(notHeld, Result{Stage: StageLock, ID: in.ID, Path: in.Path, Skipped: true, Reason: le.Reason()})
		default:
			notHeld = append(notHeld, Result{Stage: StageLock, ID: in.ID, Path: in.Path, Err: err})
		}
	}
	return set, held, notHeld
}
