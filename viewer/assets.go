package viewer

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// assets are the viewer's own script (committed) and OpenSeadragon's
// build in assets/openseadragon/, which scripts/fetch-openseadragon.sh
// (make setup) puts there, ignored by git: a build before the fetch embeds
// no OpenSeadragon, and the viewer page says how to fetch it.
//
//go:embed assets
var assets embed.FS

// OpenSeadragonPath is where the fetched OpenSeadragon build lies in the
// source tree.
const OpenSeadragonPath = "viewer/assets/openseadragon"

// HaveOpenSeadragon says whether this binary embeds OpenSeadragon.
func HaveOpenSeadragon() bool {
	_, err := fs.Stat(assets, "assets/openseadragon/openseadragon.min.js")
	return err == nil
}

var assetTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, rel string) {
	ct, ok := assetTypes[path.Ext(rel)]
	if rel == "" || !ok || !fs.ValidPath(rel) || strings.HasPrefix(path.Base(rel), ".") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(assets, "assets/"+rel)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(b)
}

// viewCSP lets the viewer page run its scripts, fetch the descriptor,
// tiles and attention, and draw the overlay (a canvas: a data: image).
const viewCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'"

type viewData struct {
	ID, Name, DZI, Attention, Tiling, Report string
	MPP                                      float64
	Model                                    string     // the model whose attention is shown ("": the latest)
	Runs                                     []ModelRun // every model's stored attention
	HaveOSD                                  bool
	FetchHint                                string
}

var viewTemplate = template.Must(template.New("view").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.ID}} · her2wsi viewer</title>
<style>
html, body { margin: 0; height: 100%; font-family: system-ui, sans-serif; color: #222; }
body { display: flex; flex-direction: column; }
header { padding: .4em .8em; background: #f4f4f4; border-bottom: 1px solid #ccc; display: flex; flex-wrap: wrap; gap: .4em 1.4em; align-items: center; }
header h1 { font-size: 1.05em; margin: 0; }
header h1 small { font-weight: normal; color: #555; }
#osd { flex: 1; background: #000; position: relative; }
#bar { width: 10em; height: .8em; display: inline-block; vertical-align: middle; border: 1px solid #888;
  background: linear-gradient(to right, #440154, #482878, #3e4989, #31688e, #26828e, #1f9e89, #35b779, #6ece58, #b5de2b, #fde725); }
.key { display: inline-block; width: 1.4em; height: .8em; vertical-align: middle; margin-right: .2em; }
#info { font-variant-numeric: tabular-nums; }
#scale { position: absolute; left: 12px; bottom: 12px; z-index: 10; color: #fff; font-size: 12px; pointer-events: none;
  background: rgba(0, 0, 0, .6); padding: 4px 6px; border-radius: 3px; }
#scale:empty { display: none; }
#scale div { height: 4px; background: #fff; border: 1px solid #000; }
#keys { color: #555; font-size: .85em; }
.missing { padding: 2em; }
.note { color: #a94442; }
</style>
</head>
<body data-id="{{.ID}}" data-dzi="{{.DZI}}" data-attention="{{.Attention}}" data-tiling="{{.Tiling}}" data-mpp="{{.MPP}}">
<header>
<h1>{{.ID}}{{if ne .Name .ID}} <small>{{.Name}}</small>{{end}}</h1>
<span id="prediction"></span>
{{if .Runs}}<label>model <select id="model">{{if not .Model}}<option value="" selected>latest</option>{{end}}{{range .Runs}}<option value="{{.Model}}"{{if eq .Model $.Model}} selected{{end}}>{{if .Variant}}{{.Variant}} {{end}}{{.Model}}{{if .Prediction}} · {{.Prediction}}{{end}}{{if .Time}} · {{.Time}}{{end}}</option>{{end}}</select></label>{{end}}
<label title="o"><input type="checkbox" id="overlay" checked> attention</label>
<label>opacity <input type="range" id="opacity" min="0" max="1" step="0.05" value="0.45"></label>
<span>low <span id="bar"></span> high</span>
<label title="t"><input type="checkbox" id="tiling"> tissue <span class="key" style="border-top: 3px solid #00e600"></span> &amp; patches <span class="key" style="border: 1px solid #0028ff"></span></label>
<span id="info">click a patch for its attention</span>
{{if .Report}}<a href="{{.Report}}">report</a>{{end}}
<a href="/">status</a>
<span id="keys">keys: + − zoom, arrows pan, 0 whole slide, o attention, t tissue</span>
</header>
{{if .HaveOSD}}<div id="osd"><div id="scale"></div></div>
<script src="/viewer/openseadragon/openseadragon.min.js"></script>
<script src="/viewer/viewer.js"></script>
{{else}}<div class="missing"><p class="note">the viewer assets are missing: this binary was built without OpenSeadragon.</p>
<p>Fetch them with <code>{{.FetchHint}}</code> (or <code>make setup</code>) in the source tree, then build again.</p></div>{{end}}
</body>
</html>
`))

func (s *Server) serveView(w http.ResponseWriter, r *http.Request, id string) {
	rec, err := s.record(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rec.Imported != "" {
		http.Error(w, "slide "+id+" has no slide file here (its features were imported)", http.StatusNotFound)
		return
	}
	model := r.URL.Query().Get("model")
	if model != "" {
		if fi, err := s.root.Stat(attentionFile(id, model)); !validModel(model) || err != nil || !fi.Mode().IsRegular() {
			http.Error(w, "slide "+id+" has no attention of model "+model, http.StatusNotFound)
			return
		}
	}
	d := viewData{ID: id, Name: filepath.Base(rec.Slide.Path), DZI: slideURL(id) + ".dzi", Attention: slideURL(id) + "/attention.json",
		Tiling: slideURL(id) + "/tiling.json", MPP: rec.Slide.MPPX, Model: model, Runs: s.ModelRuns(id),
		HaveOSD: HaveOpenSeadragon(), FetchHint: "scripts/fetch-openseadragon.sh"}
	if model != "" {
		d.Attention += "?model=" + url.QueryEscape(model)
	}
	if fi, err := s.root.Stat(path.Join("slides", id, "report.html")); err == nil && fi.Mode().IsRegular() {
		d.Report = "/work" + slideURL(id) + "/report.html"
	}
	var b strings.Builder
	if err := viewTemplate.Execute(&b, d); err != nil {
		http.Error(w, "viewer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", viewCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
}

// slideURL is /slides/<id>, each segment escaped.
func slideURL(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = urlPathEscape(s)
	}
	return "/slides/" + strings.Join(segs, "/")
}

// ViewURL is the viewer page of slide id.
func ViewURL(id string) string { return slideURL(id) + "/view" }
