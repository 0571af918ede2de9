package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config file sets the flags the command line did not; the command line
// wins; lists feed repeatable and comma-separated flags; unknown keys and
// formats are errors naming the file; the effective settings round-trip.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body string }{
		{"p.yaml", "input: [a.svs, b.svs]\nstage: [tile, embed]\nbatch: 16\nmpp_tolerance: 0.1\n"},
		{"p.toml", "input = [\"a.svs\", \"b.svs\"]\nstage = [\"tile\", \"embed\"]\nbatch = 16\nmpp_tolerance = 0.1\n"},
	} {
		path := filepath.Join(dir, tc.name)
		os.WriteFile(path, []byte(tc.body), 0o644)
		fs := newFlags("run", "")
		var inputs stringList
		fs.Var(&inputs, "input", "")
		stage := fs.String("stage", "all", "")
		batch := fs.Int("batch", 32, "")
		tol := fs.Float64("mpp-tolerance", 0.05, "")
		fs.String("config", "", "")
		if err := fs.Parse([]string{"--batch", "8"}); err != nil {
			t.Fatal(err)
		}
		if err := applyConfigFile(fs, path); err != nil {
			t.Fatal(err)
		}
		if strings.Join(inputs, " ") != "a.svs b.svs" || *stage != "tile,embed" || *batch != 8 || *tol != 0.1 {
			t.Errorf("%s: inputs %v stage %q batch %d (flag wins: 8) tolerance %g", tc.name, inputs, *stage, *batch, *tol)
		}
		eff := filepath.Join(dir, "eff-"+tc.name+".yaml")
		if err := writeEffectiveConfig(fs, eff); err != nil {
			t.Fatal(err)
		}
		fs2 := newFlags("run", "")
		var in2 stringList
		fs2.Var(&in2, "input", "")
		st2 := fs2.String("stage", "all", "")
		b2 := fs2.Int("batch", 32, "")
		fs2.Float64("mpp-tolerance", 0.05, "")
		fs2.String("config", "", "")
		if err := applyConfigFile(fs2, eff); err != nil {
			t.Fatal(err)
		}
		if strings.Join(in2, " ") != "a.svs b.svs" || *st2 != "tile,embed" || *b2 != 8 {
			t.Errorf("effective config does not round-trip: %v %q %d", in2, *st2, *b2)
		}
	}
	for body, want := range map[string]string{"bogus: 1\n": `unknown setting "bogus"`, "batch: x\n": "batch"} {
		path := filepath.Join(dir, "bad.yaml")
		os.WriteFile(path, []byte(body), 0o644)
		fs := newFlags("run", "")
		fs.Int("batch", 32, "")
		if err := applyConfigFile(fs, path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %v, want one naming %s and %q", body, err, path, want)
		}
	}
	if err := applyConfigFile(newFlags("run", ""), filepath.Join(dir, "x.ini")); err == nil {
		t.Error("a missing .ini file was accepted")
	}
}
