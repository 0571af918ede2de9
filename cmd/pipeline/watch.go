package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/viewer"
	"github.com/her2wsi/her2wsi/watch"
)

// runWatch is `pipeline watch`: a folder technicians copy slides into; each
// complete slide is tiled, embedded, anchored and predicted, reported, and
// moved to done/ (or, with a reason file, failed/).
func runWatch(ctx context.Context, args []string) error {
	fs := newFlags("watch", "--inbox DIR --work WORK --model RUNDIR --encoder M.onnx [--http 127.0.0.1:8080] [flags]")
	inbox := fs.String("inbox", "", "folder slides are copied into (required); finished slides go to its done/ and failed/")
	out := workFlag(fs, "work folder (required): stage outputs, predictions.csv, reports, watch/ journals", "out")
	stable := fs.Duration("stable", watch.DefaultStable, "a slide is complete when its size and modification time stay unchanged this long")
	poll := fs.Duration("poll", watch.DefaultPoll, "scan interval (file events, where they arrive, scan sooner)")
	once := fs.Bool("once", false, "process the slides complete now, then exit (for cron and tests)")
	httpAddr := fs.String("http", "", "serve a status page and the slide viewer on this address (a bare :PORT binds to 127.0.0.1; give 0.0.0.0:PORT to expose it, behind a token)")
	httpf := addStatusFlags(fs)
	// embed
	eopt := pipeline.DefaultEmbedOptions()
	var eo encoderOptions
	eo.addFlags(fs, "")
	fs.IntVar(&eopt.Batch, "batch", eopt.Batch, "patches per inference call")
	fs.IntVar(&eopt.Readers, "readers", eopt.Readers, "goroutines reading and preprocessing patches")
	fs.BoolVar(&eopt.ScaledDecode, "scaled-decode", eopt.ScaledDecode, "decode 40×/80× JPEG tiles at 1/2 or 1/4 scale (libjpeg-turbo) instead of whole then averaged; false reads every pixel")
	// tile
	topt := pipeline.DefaultTileOptions()
	fs.Float64Var(&topt.MPP, "mpp", 0, "microns per pixel at level 0 for slides whose metadata has none")
	fs.StringVar(&topt.Reader, "reader", "", "force a loader: tiffload or openslideload")
	// predict
	var mo modelOptions
	mo.addFlags(fs, "")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	case *inbox == "" || *out == "":
		return usageError{errors.New("--inbox and --work are required")}
	case eo.encoder == "":
		return usageError{errors.New("--encoder FILE.onnx (or a name) is required")}
	case (mo.runDir == "") == (mo.weights == ""):
		return usageError{errors.New("one of --model RUNDIR or --weights W.safetensors is required")}
	case *stable <= 0 || *poll <= 0:
		return usageError{errors.New("--stable and --poll must be positive")}
	}
	if err := topt.Validate(); err != nil {
		return usageError{err}
	}
	if err := eopt.Validate(); err != nil {
		return usageError{err}
	}
	if err := eo.validate(); err != nil {
		return usageError{err}
	}
	opt := watch.Options{
		Inbox: *inbox, Work: pipeline.Work{Dir: *out}, Stable: *stable, Poll: *poll, Once: *once,
		Tile: topt, Embed: eopt, Anchors: pipeline.DefaultAnchorOptions(),
	}
	var tokenURL string // to print once: a token was generated
	if *httpAddr != "" {
		l, sopt, generated, err := httpf.listen(*httpAddr)
		if err != nil {
			return usageError{err}
		}
		opt.Status, opt.StatusPage = l, sopt
		v, err := viewer.New(viewer.Options{Work: opt.Work})
		if err != nil {
			l.Close()
			return err
		}
		defer v.Close()
		opt.Viewer, opt.ViewURL = v, viewer.ViewURL
		if generated {
			tokenURL = watch.StatusURL(l, sopt.Token)
		}
	} else if f := httpf.setIn(fs); f != "" {
		return usageError{fmt.Errorf("--%s needs --http", f)}
	}
	setupLogging(logf, false)
	closeListener := func() {
		if opt.Status != nil {
			opt.Status.Close()
		}
	}
	m, err := pipeline.OpenModel(mo.runDir, mo.weights, mo.config, mo.backend)
	if err != nil {
		closeListener()
		return err
	}
	defer m.Close()
	enc, err := features.Open(eo.encoder, eo.options())
	if err != nil {
		closeListener()
		return err
	}
	defer enc.Close()
	opt.Encoder, opt.Model = enc, m
	w, err := watch.New(opt)
	if err != nil {
		closeListener()
		return err
	}
	if opt.Status != nil {
		slog.Info("status page", "url", watch.StatusURL(opt.Status, ""), "listen", opt.Status.Addr().String(), "token", opt.StatusPage.Token != "")
		if tokenURL != "" {
			fmt.Fprintf(os.Stderr, "status page: open %s\n(the token was generated for this run; give --http-token or $%s to keep one)\n", tokenURL, watch.StatusTokenEnv)
		}
	}
	slog.Info("watching", "inbox", *inbox, "work", *out, "model", m.ID, "encoder", enc.Name(), "stable", stable.String(), "poll", poll.String(), "once", *once)
	start := time.Now()
	err = w.Run(ctx)
	if !*once && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		slog.Info("stopped", "after", time.Since(start).Round(time.Second))
		return nil // a signal is how a watcher normally ends
	}
	return err
}

// statusFlags are the status page's flags beside --http, for every command
// that serves it.
type statusFlags struct {
	token      string
	allowHosts stringList
	maxConns   int
}

func addStatusFlags(fs *flag.FlagSet) *statusFlags {
	f := &statusFlags{}
	fs.StringVar(&f.token, "http-token", "", "token the status page requires (default $"+watch.StatusTokenEnv+"; an --http address that is not loopback without one gets a random token, printed on stderr with the URL to open); clients send Authorization: Bearer TOKEN or open the URL with ?token=TOKEN once")
	fs.Var(&f.allowHosts, "http-allow-host", "further Host names the status page answers to when --http is not loopback (repeatable, or a comma list; always allowed: the address connected to, this machine's name, localhost)")
	fs.IntVar(&f.maxConns, "http-max-conns", watch.DefaultStatusMaxConns, "most connections the status page serves at once")
	return f
}

// setIn names a status page flag given on the command line, or "".
func (f *statusFlags) setIn(fs *flag.FlagSet) string {
	var set string
	fs.Visit(func(fl *flag.Flag) {
		if set == "" && (fl.Name == "http-token" || fl.Name == "http-allow-host" || fl.Name == "http-max-conns") {
			set = fl.Name
		}
	})
	return set
}

// listen opens addr for the status page and completes its options: Public
// when addr is not loopback, with a token generated when none is given.
func (f *statusFlags) listen(addr string) (ln net.Listener, opt watch.StatusOptions, generated bool, err error) {
	if f.maxConns < 1 {
		return nil, opt, false, fmt.Errorf("--http-max-conns %d: want at least 1", f.maxConns)
	}
	opt = watch.StatusOptions{Token: f.token, MaxConns: f.maxConns}
	if opt.Token == "" {
		opt.Token = os.Getenv(watch.StatusTokenEnv)
	}
	for _, v := range f.allowHosts {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				opt.AllowHosts = append(opt.AllowHosts, h)
			}
		}
	}
	if err := opt.Validate(); err != nil {
		return nil, opt, false, err
	}
	if ln, err = watch.ListenStatus(addr); err != nil {
		return nil, opt, false, err
	}
	if opt = opt.ForListener(ln); opt.Public && opt.Token == "" {
		if opt.Token, err = watch.NewStatusToken(); err != nil {
			ln.Close()
			return nil, opt, false, err
		}
		generated = true
	}
	return ln, opt, generated, nil
}
