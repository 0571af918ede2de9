package slidelock

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one share of a batch of slides, for running the pipeline as
// several processes (a Slurm array, a Kubernetes Indexed Job) over one work
// folder: shard Index of Count takes the slides whose id hashes to Index
// (ShardOf).
//
// Shards are 0-based, like JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID
// under --array=0-(n-1): "0/4" … "3/4". "4/4" is rejected (there is no
// 1-based form), so an off-by-one in a job script fails loudly instead of
// silently dropping a share.
//
// The zero Shard (Count 0) owns every slide; so does "0/1".
type Shard struct{ Index, Count int }

// ParseShard reads "i/n" (decimal, 0 ≤ i < n). The empty string is the
// zero Shard (every slide).
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("slidelock: shard %q: want i/n, e.g. 0/4 (0-based: 0/4 … 3/4)", s)
	}
	i, err1 := parseShardInt(is)
	n, err2 := parseShardInt(ns)
	switch {
	case err1 != nil || err2 != nil:
		return Shard{}, fmt.Errorf("slidelock: shard %q: want i/n with non-negative decimal integers, e.g. 0/4", s)
	case n == 0:
		return Shard{}, fmt.Errorf("slidelock: shard %q: the number of shards must be at least 1", s)
	case i >= n:
		return Shard{}, fmt.Errorf("slidelock: shard %q: index must be in 0..%d (shards are 0-based: 0/%d … %d/%d)", s, n-1, n, n-1, n)
	}
	return Shard{Index: i, Count: n}, nil
}

// parseShardInt accepts digits only: no sign, no spaces, no 0x.
func parseShardInt(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// String is "i/n", or "" for the zero Shard (so ParseShard(s.String()) == s).
func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Count)
}

// Set parses a --shard flag value (Shard is a flag.Value through *Shard).
func (s *Shard) Set(v string) error {
	sh, err := ParseShard(v)
	if err != nil {
		return err
	}
	*s = sh
	return nil
}

// All reports whether s takes every slide (the zero Shard or 0/1).
func (s Shard) All() bool { return s.Count <= 1 }

// Owns reports whether the slide id falls in this shard:
// ShardOf(id, Count) == Index. The zero Shard owns everything.
func (s Shard) Owns(id string) bool {
	if s.All() {
		return true
	}
	return ShardOf(id, s.Count) == s.Index
}

// Filter returns the ids this shard owns, in their order. The zero Shard
// returns ids itself.
func (s Shard) Filter(ids []string) []string {
	if s.All() {
		return ids
	}
	var out []string
	for _, id := range ids {
		if s.Owns(id) {
			out = append(out, id)
		}
	}
	return out
}

// ShardOf is the shard (0..n-1) that owns a slide id among n shards:
//
//	mix64(FNV-1a-64(id)) mod n
//
// where mix64 is the MurmurHash3 64-bit finaliser. It depends on the id and
// n only, so adding or removing slides never moves a slide to another
// shard (changing n does). The finaliser is there because raw FNV-1a
// mod 2^k depends only on the low k bits of each byte (mod 2 it is the
// parity of the number of odd bytes), which splits similar ids poorly for
// power-of-two n. This formula is a contract: job scripts and users may
// compute it, and TestShardOfPinned pins it. n ≤ 0 gives 0.
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(mix64(h.Sum64()) % uint64(n))
}

// mix64 is MurmurHash3's fmix64: a bijection that spreads every input bit
// over every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
