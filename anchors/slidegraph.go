package anchors

import (
	"fmt"
	"math"
	"sort"
)

// GraphOptions are SlideGraph+'s graph-construction settings, named and
// defaulted as TIAToolbox's SlideGraphConstructor.build (distances in the
// coordinates' units: level-0 pixels here, as TIAToolbox's patch positions
// at the slide's highest resolution).
type GraphOptions struct {
	LambdaD               float64 `json:"lambda_d"`                // spatial distance weight (3e-3)
	LambdaF               float64 `json:"lambda_f"`                // feature distance weight (1e-3)
	LambdaH               float64 `json:"lambda_h"`                // clustering cut on 1−similarity (0.8)
	ConnectivityDistance  float64 `json:"connectivity_distance"`   // longest Delaunay edge kept (4000)
	NeighbourSearchRadius float64 `json:"neighbour_search_radius"` // pairs further apart are dissimilar (2000)
	// FeatureRangeThresh drops feature columns whose range over the slide
	// is at most this before the feature distance (0: keep all, as the
	// SlideGraph notebook calls build with feature_range_thresh=None).
	FeatureRangeThresh float64 `json:"feature_range_thresh"`
}

// DefaultGraphOptions are build's defaults with the notebook's
// feature_range_thresh=None.
func DefaultGraphOptions() GraphOptions {
	return GraphOptions{LambdaD: 3e-3, LambdaF: 1e-3, LambdaH: 0.8, ConnectivityDistance: 4000, NeighbourSearchRadius: 2000}
}

// MaxGraphPatches bounds the patches one graph is built from: the
// clustering holds the N×N dissimilarity matrix (float32), 1 GiB at 16k.
const MaxGraphPatches = 16384

// SlideGraph is a slide's SlideGraph+ graph: nodes are clusters of patches,
// node features the cluster means, edges the Delaunay triangulation of the
// cluster centroids cut at ConnectivityDistance.
type SlideGraph struct {
	Nodes  int
	Assign []int32      // per patch: its node
	Coords [][2]float64 // per node: rounded mean (x, y) of its patches
	Edges  [][2]int32   // directed pairs (src, dst), both directions, sorted: edge_index's columns
}

// BuildSlideGraph clusters N patches at xy (level-0 x, y pairs) with
// features feats (N×dim) by average-linkage agglomerative clustering on the
// hybrid dissimilarity 1 − exp(−λf‖fi−fj‖)·exp(−λd‖pi−pj‖) (1 for pairs
// further apart than the search radius), cut at λh as scipy's
// fcluster(criterion="distance"), and connects the cluster centroids by
// Delaunay triangulation. Nodes are numbered by their first patch.
func BuildSlideGraph(xy []float64, feats []float32, dim int, o GraphOptions) (*SlideGraph, error) {
	n := len(xy) / 2
	switch {
	case len(xy)%2 != 0 || n == 0:
		return nil, fmt.Errorf("anchors: slide graph: %d coordinate values", len(xy))
	case dim <= 0 || len(feats) != n*dim:
		return nil, fmt.Errorf("anchors: slide graph: %d feature values for %d patches of %d dimensions", len(feats), n, dim)
	case n > MaxGraphPatches:
		return nil, fmt.Errorf("anchors: slide graph: %d patches, more than %d (subsample the slide on its grid)", n, MaxGraphPatches)
	}
	cols := make([]int, 0, dim)
	for d := 0; d < dim; d++ {
		if o.FeatureRangeThresh > 0 {
			lo, hi := feats[d], feats[d]
			for i := 1; i < n; i++ {
				v := feats[i*dim+d]
				lo, hi = min(lo, v), max(hi, v)
			}
			if float64(hi-lo) <= o.FeatureRangeThresh {
				continue
			}
		}
		cols = append(cols, d)
	}
	// Dense dissimilarity (float32 storage, float64 arithmetic).
	D := make([]float32, n*n)
	r2 := o.NeighbourSearchRadius * o.NeighbourSearchRadius
	for i := 0; i < n; i++ {
		D[i*n+i] = 0
		for j := i + 1; j < n; j++ {
			dx, dy := xy[2*i]-xy[2*j], xy[2*i+1]-xy[2*j+1]
			s2 := dx*dx + dy*dy
			v := 1.0
			if s2 < r2 {
				var f2 float64
				fi, fj := feats[i*dim:], feats[j*dim:]
				for _, d := range cols {
					t := float64(fi[d]) - float64(fj[d])
					f2 += t * t
				}
				v = 1 - math.Exp(-o.LambdaF*math.Sqrt(f2))*math.Exp(-o.LambdaD*math.Sqrt(s2))
			}
			D[i*n+j], D[j*n+i] = float32(v), float32(v)
		}
	}
	label := averageLinkageCut(D, n, o.LambdaH)
	// Number the clusters by their first patch.
	node := map[int]int32{}
	g := &SlideGraph{Assign: make([]int32, n)}
	for i, l := range label {
		k, ok := node[l]
		if !ok {
			k = int32(len(node))
			node[l] = k
		}
		g.Assign[i] = k
	}
	g.Nodes = len(node)
	sum := make([][3]float64, g.Nodes)
	for i, k := range g.Assign {
		sum[k][0] += xy[2*i]
		sum[k][1] += xy[2*i+1]
		sum[k][2]++
	}
	g.Coords = make([][2]float64, g.Nodes)
	for k, s := range sum {
		g.Coords[k] = [2]float64{math.RoundToEven(s[0] / s[2]), math.RoundToEven(s[1] / s[2])}
	}
	g.Edges = delaunayEdges(g.Coords, o.ConnectivityDistance)
	return g, nil
}

// averageLinkageCut runs average-linkage agglomeration by the
// nearest-neighbour chain (the same dendrogram as the sorted-merge
// algorithm for this reducible linkage) and returns each point's cluster
// root after the merges of height ≤ t, which are exactly fcluster's flat
// clusters at distance t (average-linkage heights are monotone). D is
// overwritten.
func averageLinkageCut(D []float32, n int, t float64) []int {
	size := make([]int, n)
	active := make([]bool, n)
	for i := range size {
		size[i], active[i] = 1, true
	}
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	chain := make([]int, 0, n)
	left := n
	for left > 1 {
		if len(chain) == 0 {
			for i := 0; i < n; i++ {
				if active[i] {
					chain = append(chain, i)
					break
				}
			}
		}
		for {
			a := chain[len(chain)-1]
			prev := -1
			if len(chain) > 1 {
				prev = chain[len(chain)-2]
			}
			// Nearest active neighbour of a; prefer prev on ties so the chain ends.
			best, bd := -1, math.Inf(1)
			if prev >= 0 {
				best, bd = prev, float64(D[a*n+prev])
			}
			row := D[a*n : a*n+n]
			for j := 0; j < n; j++ {
				if j == a || !active[j] {
					continue
				}
				if d := float64(row[j]); d < bd {
					best, bd = j, d
				}
			}
			if best == prev {
				// a and prev are reciprocal nearest neighbours: merge a into prev.
				chain = chain[:len(chain)-2]
				na, nb := float64(size[a]), float64(size[prev])
				for k := 0; k < n; k++ {
					if !active[k] || k == a || k == prev {
						continue
					}
					v := float32((na*float64(D[a*n+k]) + nb*float64(D[prev*n+k])) / (na + nb))
					D[prev*n+k], D[k*n+prev] = v, v
				}
				active[a] = false
				size[prev] += size[a]
				if bd <= t {
					parent[find(a)] = find(prev)
				}
				left--
				break
			}
			chain = append(chain, best)
		}
	}
	out := make([]int, n)
	for i := range out {
		out[i] = find(i)
	}
	return out
}

// delaunayEdges triangulates the points (Bowyer–Watson) and returns the
// triangle edges of length ≤ dthresh in both directions, sorted. Fewer than
// three points, or collinear ones, get the edges among consecutive points
// the triangulation's hull would give (TIAToolbox refuses fewer than four
// points; a one- to three-node graph is kept here with its short edges).
func delaunayEdges(p [][2]float64, dthresh float64) [][2]int32 {
	n := len(p)
	adj := map[[2]int32]bool{}
	add := func(a, b int) {
		if a == b || a >= n || b >= n {
			return
		}
		dx, dy := p[a][0]-p[b][0], p[a][1]-p[b][1]
		if math.Sqrt(dx*dx+dy*dy) > dthresh {
			return
		}
		adj[[2]int32{int32(a), int32(b)}] = true
		adj[[2]int32{int32(b), int32(a)}] = true
	}
	if n >= 2 {
		for _, t := range bowyerWatson(p) {
			add(t[0], t[1])
			add(t[1], t[2])
			add(t[0], t[2])
		}
	}
	out := make([][2]int32, 0, len(adj))
	for e := range adj {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

// bowyerWatson returns the Delaunay triangles of p (indices into p); the
// super-triangle's vertices are n, n+1, n+2 and triangles touching them are
// kept so that collinear points still yield their hull edges (callers drop
// edges to indices ≥ n).
func bowyerWatson(p [][2]float64) [][3]int {
	n := len(p)
	minX, minY, maxX, maxY := p[0][0], p[0][1], p[0][0], p[0][1]
	for _, q := range p {
		minX, maxX = min(minX, q[0]), max(maxX, q[0])
		minY, maxY = min(minY, q[1]), max(maxY, q[1])
	}
	span := max(maxX-minX, maxY-minY, 1)
	cx, cy := (minX+maxX)/2, (minY+maxY)/2
	pts := append(append([][2]float64(nil), p...),
		[2]float64{cx - 40*span, cy - 30*span}, [2]float64{cx + 40*span, cy - 30*span}, [2]float64{cx, cy + 40*span})
	type tri struct {
		v      [3]int
		cx, cy float64
		r2     float64
	}
	mk := func(a, b, c int) tri {
		ax, ay := pts[a][0], pts[a][1]
		bx, by := pts[b][0], pts[b][1]
		qx, qy := pts[c][0], pts[c][1]
		d := 2 * (ax*(by-qy) + bx*(qy-ay) + qx*(ay-by))
		if d == 0 {
			return tri{v: [3]int{a, b, c}, r2: math.Inf(1)}
		}
		a2, b2, c2 := ax*ax+ay*ay, bx*bx+by*by, qx*qx+qy*qy
		ux := (a2*(by-qy) + b2*(qy-ay) + c2*(ay-by)) / d
		uy := (a2*(qx-bx) + b2*(ax-qx) + c2*(bx-ax)) / d
		return tri{v: [3]int{a, b, c}, cx: ux, cy: uy, r2: (ax-ux)*(ax-ux) + (ay-uy)*(ay-uy)}
	}
	tris := []tri{mk(n, n+1, n+2)}
	for i := 0; i < n; i++ {
		x, y := pts[i][0], pts[i][1]
		edges := map[[2]int]int{}
		keep := tris[:0]
		for _, t := range tris {
			dx, dy := x-t.cx, y-t.cy
			if dx*dx+dy*dy < t.r2*(1+1e-12) {
				for _, e := range [][2]int{{t.v[0], t.v[1]}, {t.v[1], t.v[2]}, {t.v[0], t.v[2]}} {
					if e[0] > e[1] {
						e[0], e[1] = e[1], e[0]
					}
					edges[e]++
				}
				continue
			}
			keep = append(keep, t)
		}
		tris = keep
		for e, c := range edges {
			if c == 1 {
				tris = append(tris, mk(e[0], e[1], i))
			}
		}
	}
	out := make([][3]int, len(tris))
	for i, t := range tris {
		out[i] = t.v
	}
	return out
}
