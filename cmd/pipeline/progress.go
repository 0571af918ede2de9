package main

import (
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/her2wsi/her2wsi/pipeline"
)

// barProgress draws a progress bar on a terminal; without one it is inert
// and the structured log lines are the progress record.
type barProgress struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
	tty bool
}

// lineWriter clears the bar's line before each log line so the two don't mix.
type lineWriter struct {
	p *barProgress
	w io.Writer
}

func (l lineWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if l.p.bar != nil {
		io.WriteString(l.w, "\r\033[K")
	}
	n, err := l.w.Write(b)
	if l.p.bar != nil {
		l.p.bar.RenderBlank()
	}
	return n, err
}

// setupLogging installs the slog handler: JSON or text; on a terminal (auto)
// text plus a progress bar when withBar is set.
func setupLogging(f logFlags, withBar bool) *barProgress {
	p := &barProgress{tty: withBar && *f.format == "auto" && term.IsTerminal(int(os.Stderr.Fd()))}
	level := slog.LevelInfo
	if *f.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	var h slog.Handler
	w := io.Writer(os.Stderr)
	if p.tty {
		w = lineWriter{p: p, w: os.Stderr}
	}
	if *f.format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	slog.SetDefault(slog.New(h))
	return p
}

func (p *barProgress) Start(stage string, total int) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(stage),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *barProgress) Done(r pipeline.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Add(1)
	}
}

func (p *barProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// durationText writes durations with their unit ("1.5s", "84ms") in every
// log format; JSON would otherwise write bare nanoseconds.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
