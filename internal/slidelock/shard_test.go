package slidelock

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Shard
		wantErr string // substring; "" means ok
	}{
		{"", Shard{}, ""},
		{"0/1", Shard{0, 1}, ""},
		{"0/4", Shard{0, 4}, ""},
		{"3/4", Shard{3, 4}, ""},
		{"15/16", Shard{15, 16}, ""},
		{"007/10", Shard{7, 10}, ""},
		{"4/4", Shard{}, "index must be in 0..3 (shards are 0-based"},
		{"1/1", Shard{}, "index must be in 0..0"},
		{"0/0", Shard{}, "at least 1"},
		{"5/0", Shard{}, "at least 1"},
		{"-1/4", Shard{}, "non-negative decimal"},
		{"+1/4", Shard{}, "non-negative decimal"},
		{"1/-4", Shard{}, "non-negative decimal"},
		{" 1/4", Shard{}, "non-negative decimal"},
		{"1 /4", Shard{}, "non-negative decimal"},
		{"a/4", Shard{}, "non-negative decimal"},
		{"0x1/4", Shard{}, "non-negative decimal"},
		{"1/", Shard{}, "non-negative decimal"},
		{"/4", Shard{}, "non-negative decimal"},
		{"1/2/3", Shard{}, "non-negative decimal"},
		{"1", Shard{}, "want i/n"},
		{"1of4", Shard{}, "want i/n"},
		{"1/99999999999999999999999", Shard{}, "non-negative decimal"},
	} {
		got, err := ParseShard(c.in)
		if c.wantErr == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseShard(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseShard(%q) = %v; want an error containing %q", c.in, got, c.wantErr)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.wantErr) || !strings.HasPrefix(msg, "slidelock: shard ") || strings.Contains(msg, "\n") {
			t.Errorf("ParseShard(%q) error %q; want one line starting \"slidelock: shard \" containing %q", c.in, msg, c.wantErr)
		}
	}
}

func FuzzParseShard(f *testing.F) {
	for _, s := range []string{"", "0/1", "3/4", "4/4", "-1/2", "1/0", "01/02", "9/99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShard(s)
		if err != nil {
			if sh != (Shard{}) {
				t.Fatalf("ParseShard(%q) returned %v with error", s, sh)
			}
			return
		}
		if s != "" && (sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count) {
			t.Fatalf("ParseShard(%q) = %v: out of range", s, sh)
		}
		back, err := ParseShard(sh.String())
		if err != nil || back != sh {
			t.Fatalf("ParseShard(%q).String() = %q does not read back: %v, %v", s, sh.String(), back, err)
		}
		if id := s; !sh.All() && ShardOf(id, sh.Count) != sh.Index && sh.Owns(id) {
			t.Fatalf("Owns disagrees with ShardOf for %q", id)
		}
	})
}

func TestShardFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	var sh Shard
	fs.Var(&sh, "shard", "")
	if err := fs.Parse([]string{"--shard", "2/5"}); err != nil || sh != (Shard{2, 5}) {
		t.Fatalf("--shard 2/5: %v, %v", sh, err)
	}
	if err := fs.Parse([]string{"--shard", "5/5"}); err == nil {
		t.Fatal("--shard 5/5 accepted")
	}
}

func shardIDs(n int) []string {
	ids := make([]string, 0, n)
	for i := range n {
		if i%2 == 0 {
			ids = append(ids, fmt.Sprintf("slide-%05d", i))
		} else {
			ids = append(ids, fmt.Sprintf("TCGA-%02X-%04d-01Z-00-DX1", i%251, i))
		}
	}
	return ids
}

func TestShardZeroOwnsAll(t *testing.T) {
	in := []string{"a", "b"}
	for _, sh := range []Shard{{}, {0, 1}} {
		if !sh.All() || !sh.Owns("anything") || len(sh.Filter(in)) != 2 {
			t.Errorf("%v does not own everything", sh)
		}
	}
	if (Shard{0, 2}).All() {
		t.Error("0/2 claims all")
	}
}

// Every id falls in exactly one shard, Filter agrees with Owns and keeps
// order, and adding ids never moves existing ones.
func TestShardPartition(t *testing.T) {
	ids := shardIDs(2000)
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 16, 64} {
		owners := map[string]int{}
		total := 0
		for i := range n {
			sh := Shard{i, n}
			part := sh.Filter(ids)
			total += len(part)
			if !slices.IsSortedFunc(part, func(a, b string) int { return slices.Index(ids, a) - slices.Index(ids, b) }) {
				t.Errorf("%v: Filter changed the order", sh)
			}
			for _, id := range part {
				if _, dup := owners[id]; dup {
					t.Fatalf("n=%d: %s in shards %d and %d", n, id, owners[id], i)
				}
				owners[id] = i
				if !sh.Owns(id) || ShardOf(id, n) != i {
					t.Fatalf("%v: Filter kept %s, which it does not own", sh, id)
				}
			}
		}
		if total != len(ids) || len(owners) != len(ids) {
			t.Fatalf("n=%d: %d ids over the shards (%d distinct), want %d", n, total, len(owners), len(ids))
		}
		// Adding slides (a bigger batch) leaves every earlier assignment.
		more := shardIDs(5000)
		for _, id := range more {
			if o, ok := owners[id]; ok && ShardOf(id, n) != o {
				t.Fatalf("n=%d: %s moved from shard %d to %d after adding ids", n, id, o, ShardOf(id, n))
			}
		}
	}
}

// The formula is a contract (README, job scripts): pin it.
func TestShardOfPinned(t *testing.T) {
	got := []int{}
	for _, id := range []string{"S1", "S2", "slide-00001", "TCGA-A2-A0CX-01Z-00-DX1", "case 7 (HE)"} {
		got = append(got, ShardOf(id, 16))
	}
	want := []int{8, 7, 4, 7, 10}
	if !slices.Equal(got, want) {
		t.Fatalf("ShardOf(…, 16) = %v, want %v: the shard formula changed, which moves slides between shards of running jobs", got, want)
	}
	if ShardOf("x", 1) != 0 || ShardOf("x", 0) != 0 || ShardOf("x", -3) != 0 {
		t.Fatal("ShardOf with n ≤ 1 is not 0")
	}
}

// 10000 ids spread evenly: every shard within 5 standard deviations of
// the binomial mean, and chi-square not absurd.
func TestShardBalance(t *testing.T) {
	ids := shardIDs(10000)
	for _, n := range []int{2, 3, 4, 8, 10, 16, 64} {
		counts := make([]int, n)
		for _, id := range ids {
			counts[ShardOf(id, n)]++
		}
		mean := float64(len(ids)) / float64(n)
		sd := math.Sqrt(mean * (1 - 1/float64(n)))
		chi := 0.0
		for i, c := range counts {
			if math.Abs(float64(c)-mean) > 5*sd {
				t.Errorf("n=%d: shard %d has %d ids, mean %.0f ± %.0f", n, i, c, mean, sd)
			}
			chi += (float64(c) - mean) * (float64(c) - mean) / mean
		}
		// chi² with n-1 degrees of freedom: mean n-1, sd sqrt(2(n-1)).
		if df := float64(n - 1); chi > df+6*math.Sqrt(2*df) {
			t.Errorf("n=%d: chi² %.1f too large for %d shards (counts %v)", n, chi, n, counts)
		}
	}
}
