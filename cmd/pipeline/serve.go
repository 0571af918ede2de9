package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/viewer"
	"github.com/her2wsi/her2wsi/watch"
)

// runServe is `pipeline serve`: the status page of a work folder without
// watching an inbox, with the slide viewer (Deep Zoom tiles read straight
// from the slides, the attention overlay).
func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", "--work WORK [--http 127.0.0.1:8080] [flags]")
	work := workFlag(fs, "work folder (required): its reports, predictions.csv and slides (slides/<id>/slide.json names each slide's file)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address to serve on (a bare :PORT binds to 127.0.0.1; give 0.0.0.0:PORT to expose it, behind a token)")
	httpf := addStatusFlags(fs)
	vopt := viewer.Options{}
	fs.IntVar(&vopt.MaxSlides, "max-slides", viewer.DefaultMaxSlides, "slides kept open at once (least recently viewed closed first)")
	cacheMB := fs.Int64("tile-cache-mb", viewer.DefaultCacheBytes>>20, "MB of encoded tiles kept in memory (least recently viewed dropped first; 0: none)")
	fs.IntVar(&vopt.MaxTiles, "max-tiles", 0, "also keep at most this many tiles (0: only --tile-cache-mb bounds them)")
	fs.IntVar(&vopt.Concurrency, "tile-readers", 0, "tiles read from slides at once (0: the CPUs)")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case *work == "":
		return usageError{errors.New("--work is required")}
	case vopt.MaxSlides < 1 || vopt.MaxTiles < 0 || vopt.Concurrency < 0 || *cacheMB < 0:
		return usageError{errors.New("--max-slides must be at least 1; --max-tiles, --tile-cache-mb and --tile-readers not negative")}
	}
	vopt.CacheBytes = *cacheMB << 20
	if *cacheMB == 0 {
		vopt.CacheBytes = -1
	}
	if fi, err := os.Stat(*work); err != nil || !fi.IsDir() {
		return usageError{fmt.Errorf("--work %s: not a folder", *work)}
	}
	setupLogging(logf, false)
	ln, sopt, generated, err := httpf.listen(*httpAddr)
	if err != nil {
		return usageError{err}
	}
	defer ln.Close()
	w := pipeline.Work{Dir: *work}
	vopt.Work = w
	v, err := viewer.New(vopt)
	if err != nil {
		return err
	}
	defer v.Close()
	page, err := watch.NewStatusPage(w, watch.WorkSnapshot(w), sopt)
	if err != nil {
		return err
	}
	defer page.Close()
	page.Mount(v, viewer.ViewURL, "/slides/", "/viewer/")
	slog.Info("serving", "work", *work, "url", watch.StatusURL(ln, ""), "listen", ln.Addr().String(), "token", sopt.Token != "", "viewer_assets", viewer.HaveOpenSeadragon())
	if !viewer.HaveOpenSeadragon() {
		slog.Warn("this binary has no OpenSeadragon: the slide viewer pages say so; run scripts/fetch-openseadragon.sh (make setup) and build again")
	}
	if generated {
		fmt.Fprintf(os.Stderr, "status page: open %s\n(the token was generated for this run; give --http-token or $%s to keep one)\n", watch.StatusURL(ln, sopt.Token), watch.StatusTokenEnv)
	} else {
		fmt.Fprintf(os.Stderr, "status page: %s\n", strings.TrimSuffix(watch.StatusURL(ln, ""), "/")+"/")
	}
	err = watch.ServeStatus(ctx, ln, page, sopt)
	if err == nil || (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return nil
	}
	return err
}
