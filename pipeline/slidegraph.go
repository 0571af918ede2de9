package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/model"
)

// SlideGraphH5 is WORK/slides/<id>/slidegraph/<features>.h5: the slide's
// SlideGraph+ graph over one features file, written by the anchors stage
// when AnchorOptions.GraphFeatures names it.
func (w Work) SlideGraphH5(id, features string) string {
	return filepath.Join(w.SlideDir(id), "slidegraph", features+".h5")
}

// writeSlideGraph builds the slide's graph over the patches the anchors
// stage keeps (rows of coords.h5; nil: all) from their level-0 coordinates
// and features, and writes x [V, D] (node features, the cluster means),
// edge_index [2, E] (src, dst), coordinates [V, 2] and assign [rows of
// coords.h5] (each patch's node, −1 for patches outside the graph), with
// the options as attributes. Atomic; same input, same bytes.
func writeSlideGraph(w Work, id string, coords []int64, rows []int, opt AnchorOptions) (int, error) {
	start := time.Now()
	feats, fcoords, dim, err := featfile.Read(w.FeaturesH5(id, opt.GraphFeatures))
	if err != nil {
		return 0, fmt.Errorf("pipeline: %s: slide graph: %w", id, err)
	}
	if !slices.Equal(fcoords, coords) {
		return 0, fmt.Errorf("pipeline: %s: slide graph: features %s are not those of the tiled coordinates (embed again)", id, opt.GraphFeatures)
	}
	n := len(coords) / 2
	if rows == nil {
		rows = make([]int, n)
		for i := range rows {
			rows[i] = i
		}
	}
	xy := make([]float64, 2*len(rows))
	f := make([]float32, len(rows)*dim)
	for i, r := range rows {
		xy[2*i], xy[2*i+1] = float64(coords[2*r]), float64(coords[2*r+1])
		copy(f[i*dim:], feats[r*dim:(r+1)*dim])
	}
	go1 := opt.graphOptions()
	g, err := anchors.BuildSlideGraph(xy, f, dim, go1)
	if err != nil {
		return 0, fmt.Errorf("pipeline: %s: %w", id, err)
	}
	x := make([]float32, g.Nodes*dim)
	cnt := make([]float64, g.Nodes)
	sum := make([]float64, g.Nodes*dim)
	assign := make([]int64, n)
	for i := range assign {
		assign[i] = -1
	}
	for i, k := range g.Assign {
		assign[rows[i]] = int64(k)
		cnt[k]++
		for d := 0; d < dim; d++ {
			sum[int(k)*dim+d] += float64(f[i*dim+d])
		}
	}
	for k := range cnt {
		for d := 0; d < dim; d++ {
			x[k*dim+d] = float32(sum[k*dim+d] / cnt[k])
		}
	}
	ei := make([]int64, 2*len(g.Edges))
	for e, ed := range g.Edges {
		ei[e], ei[len(g.Edges)+e] = int64(ed[0]), int64(ed[1])
	}
	xyOut := make([]float32, 2*g.Nodes)
	for k, c := range g.Coords {
		xyOut[2*k], xyOut[2*k+1] = float32(c[0]), float32(c[1])
	}
	path := w.SlideGraphH5(id, opt.GraphFeatures)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, fmt.Errorf("pipeline: %s: slide graph: %w", id, err)
	}
	wr, err := store.CreateH5(path)
	if err != nil {
		return 0, err
	}
	defer wr.Abort()
	for _, step := range []func() error{
		func() error { return wr.WriteFloat32("x", x, g.Nodes, dim) },
		func() error { return wr.WriteInt64("edge_index", ei, 2, len(g.Edges)) },
		func() error { return wr.WriteFloat32("coordinates", xyOut, g.Nodes, 2) },
		func() error { return wr.WriteInt64("assign", assign, n) },
		func() error {
			return wr.SetAttrs("", store.Attr{Key: "lambda_d", Value: go1.LambdaD}, store.Attr{Key: "lambda_f", Value: go1.LambdaF},
				store.Attr{Key: "lambda_h", Value: go1.LambdaH}, store.Attr{Key: "connectivity_distance", Value: go1.ConnectivityDistance},
				store.Attr{Key: "neighbour_search_radius", Value: go1.NeighbourSearchRadius}, store.Attr{Key: "feature_range_thresh", Value: go1.FeatureRangeThresh},
				store.Attr{Key: "features", Value: opt.GraphFeatures}, store.Attr{Key: "num_patches", Value: int64(len(rows))})
		},
	} {
		if err := step(); err != nil {
			return 0, fmt.Errorf("pipeline: %s: slide graph: %w", id, err)
		}
	}
	if err := wr.Commit(); err != nil {
		return 0, err
	}
	slog.Info("slide graph", "slide", id, "stage", StageAnchors, "patches", len(rows), "nodes", g.Nodes, "edges", len(g.Edges), "elapsed", time.Since(start).Round(time.Millisecond))
	return g.Nodes, nil
}

func (o AnchorOptions) graphOptions() anchors.GraphOptions {
	if o.Graph != nil {
		return *o.Graph
	}
	return anchors.DefaultGraphOptions()
}

// addGraph fills a graph variant's example from the slide's graph file:
// node features, edges, and the node of each patch the bundle holds.
func addGraph(w Work, features string, ex *model.Example, rows []int64) error {
	path := w.SlideGraphH5(ex.ID, features)
	r, err := store.OpenH5(path)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: no slide graph for features %s (run the anchors stage with --slide-graph): %w", ex.ID, features, err)
	}
	defer r.Close()
	x, xd, err := r.ReadFloat32("x")
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: %s: %w", ex.ID, path, err)
	}
	ei, ed, err := r.ReadInt64("edge_index")
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: %s: %w", ex.ID, path, err)
	}
	assign, _, err := r.ReadInt64("assign")
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: %s: %w", ex.ID, path, err)
	}
	if len(xd) != 2 || len(ed) != 2 || ed[0] != 2 {
		return fmt.Errorf("pipeline: slide %s: %s: bad shapes x %v, edge_index %v", ex.ID, path, xd, ed)
	}
	ex.V, ex.NodeX = xd[0], x
	E := ed[1]
	ex.Edges = make([][2]int32, E)
	for e := 0; e < E; e++ {
		ex.Edges[e] = [2]int32{int32(ei[e]), int32(ei[E+e])}
	}
	ex.Assign = make([]int32, len(rows))
	for i, row := range rows {
		if row < 0 || int(row) >= len(assign) || assign[row] < 0 {
			return fmt.Errorf("pipeline: slide %s: patch row %d is not in the slide graph %s (anchors stage settings changed: run it again)", ex.ID, row, path)
		}
		ex.Assign[i] = int32(assign[row])
	}
	return nil
}
