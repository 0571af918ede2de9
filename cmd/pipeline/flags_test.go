package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capture runs the command line and returns its exit code, stdout and
// stderr.
func capture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outc, errc := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outc <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errc <- string(b) }()
	code := run(args)
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	return code, <-outc, <-errc
}

// Help is on stdout with exit 0 for every command (and its sub-forms); it
// lists no hidden alias and shows each flag's value name, not prose.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"run", "-h"}, {"tile", "-h"}, {"info", "-h"}, {"train", "-h"}, {"predict", "-h"},
		{"watch", "-h"}, {"synth", "-h"}, {"cases", "-h"}, {"cases", "check", "-h"}, {"anchors", "-h"},
		{"anchors", "bins", "-h"}, {"import-features", "-h"}, {"serve", "-h"},
	} {
		code, out, errOut := capture(t, args...)
		if code != exitOK || !strings.Contains(out, "usage: pipeline") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q…, stderr %q", args, code, first(out), errOut)
		}
		for _, hidden := range []string{"  -out string\n    \twork folder", "  -encoder string\n    \tfeatures", "same as --"} {
			if strings.Contains(out, hidden) {
				t.Errorf("%v lists a hidden alias (%q)", args, hidden)
			}
		}
		if strings.Contains(out, "pipeline train\n") && args[0] != "-h" {
			t.Errorf("%v: a backquoted phrase became a value name", args)
		}
	}
	_, out, _ := capture(t, "synth", "-h")
	if !strings.Contains(out, "-cases int") {
		t.Error("synth -h hides the case-set flags")
	}
	_, out, _ = capture(t, "tile", "-h")
	for _, notTile := range []string{"-encoder", "-batch", "-model", "-stage"} {
		if strings.Contains(out, notTile+" ") {
			t.Errorf("tile -h lists %s", notTile)
		}
	}
}

// A wrong flag is one line naming it and where help is, exit 2.
func TestBadFlagOneLine(t *testing.T) {
	code, out, errOut := capture(t, "run", "--bogus")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != exitUsage || out != "" || len(lines) != 1 || !strings.Contains(lines[0], "-bogus") || !strings.Contains(lines[0], "see pipeline run -h") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Old flag names still work as hidden aliases of the new ones.
func TestFlagAliases(t *testing.T) {
	fs := newFlags("x", "")
	w := workFlag(fs, "work", "out")
	f := featuresFlag(fs, "features", true)
	if err := fs.Parse([]string{"--out", "W", "--encoder", "tiny-clip"}); err != nil {
		t.Fatal(err)
	}
	if *w != "W" || *f != "tiny-clip" || !isHidden(fs, "out") || isHidden(fs, "work") {
		t.Fatalf("work %q features %q", *w, *f)
	}
	var buf bytes.Buffer
	printUsage(&buf, fs)
	if strings.Contains(buf.String(), "-out") || strings.Contains(buf.String(), "-encoder") {
		t.Fatalf("usage lists aliases:\n%s", buf.String())
	}
	// Every command's aliases point at a flag of the new vocabulary.
	for _, c := range []struct{ old, now string }{{"out", "work"}, {"encoder", "features"}, {"model", "variant"}, {"config", "model-config"}} {
		fs := newFlags("y", "")
		switch c.now {
		case "work":
			workFlag(fs, "", c.old)
		case "features":
			featuresFlag(fs, "", true)
		default:
			addModelFlags(fs)
		}
		if fs.Lookup(c.old) == nil || fs.Lookup(c.old).Value != fs.Lookup(c.now).Value {
			t.Errorf("--%s is not an alias of --%s", c.old, c.now)
		}
	}
	_ = flag.ErrHelp
}

// featuresOf: an encoder file names its features; a name is itself.
func TestFeaturesOf(t *testing.T) {
	enc, _ := filepath.Abs(filepath.Join("..", "..", "features", "testdata", "encoders", "tiny-clip.onnx"))
	for in, want := range map[string]string{"": "", "tiny-clip": "tiny-clip", "uni.v2": "uni.v2", enc: "tiny-clip"} {
		if got := featuresOf(in); got != want {
			t.Errorf("featuresOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// One prefix per message.
func TestMessagePrefix(t *testing.T) {
	for _, c := range []struct{ cmd, err, want string }{
		{"watch", "pipeline: watch: inbox: no such file", "pipeline watch: inbox: no such file"},
		{"watch", "watch: inbox: x", "pipeline watch: inbox: x"},
		{"run", "pipeline: s1: bad", "pipeline run: s1: bad"},
		{"info", "slide: /a/b.svs: not a slide", "pipeline info: slide: /a/b.svs: not a slide"},
	} {
		if got := message(c.cmd, errString(c.err)); got != c.want {
			t.Errorf("message(%q, %q) = %q, want %q", c.cmd, c.err, got, c.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func first(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}
