package model

import (
	"cmp"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // the GoMLX graph DSL reads best unqualified
)

// TransMIL (Shao et al., NeurIPS 2021; szc19990412/TransMIL models/TransMIL.py)
// and the plain Nyström-transformer MIL of the paper's Table 2.
//
// TransMIL: h = ReLU(_fc1(x)); the N patch tokens are padded to a square
// side² by repeating the first side²−N of them; [CLS] is prepended; layer1
// (x + NystromAttention(LayerNorm(x))); PPEG (three depth-wise convolutions
// 7×7, 5×5, 3×3 with bias plus identity over the side×side grid of patch
// tokens, [CLS] untouched); layer2; LayerNorm; _fc2 on [CLS]. A TransLayer
// has no feed-forward. NystromAttention is lucidrains' nystrom_attention
// (v0.0.14) as TransMIL builds it: heads 8, dim_head dim/8, num_landmarks
// dim/2, 6 Moore–Penrose iterations, the value residual (a depth-wise
// convolution over the sequence with kernel 33 per head, no bias), to_qkv
// without bias; the sequence is padded at the front with zero rows to a
// multiple of num_landmarks, landmarks are the means of consecutive groups,
// and the padded rows take part in the softmaxes as the official code does.
//
// nystromformer: the paper cites the Nyströmformer attention paper (its
// reference [19], Xiong et al., AAAI 2021), which is an attention
// approximation, not a MIL model; the MIL baseline here is TransMIL with the
// PPEG positional layer removed and nothing else changed (the same square
// padding, layers and state_dict names minus pos_layer.*).
//
// Attention map (heatmap, viewer): Nyström attention never forms the T×T
// attention matrix; its approximation is softmax(Q·K̃ᵀ)·pinv(softmax(Q̃·K̃ᵀ))·
// softmax(Q̃·Kᵀ) (K̃, Q̃ the landmarks), what nystrom_attention returns with
// return_attn. The map is the [CLS] row of that matrix in the last layer,
// averaged over the heads, at the patch tokens (a patch repeated by the
// square padding: the mean of its two slots). Rows of the approximation do
// not sum exactly to 1 and entries can be slightly negative; the heatmap
// scales within the slide. The value-residual convolution (a fixed local
// mixing of neighbouring tokens in sequence order) is not part of the map.
//
// Dropout (training only): NystromAttention's only dropout is the
// nn.Dropout in to_out = Sequential(Linear, Dropout), after the output
// projection, in each TransLayer; TransLayer builds it with 0.1, the rate
// these variants take where the config leaves "dropout" out. It is drawn
// here on the T real rows after the front padding is cut off (the official
// code drops the padded rows too and then cuts them: the same function).
// Nothing else in TransMIL.py or nystrom_attention 0.0.14 drops (no
// attention-weight dropout, no dropout after _fc1 or PPEG).
//
// Differences from the official code: in_dim is free (the official _fc1
// takes 1024).

// Variant names.
const (
	VariantTransMIL      = "transmil"
	VariantNystromformer = "nystromformer"
)

// Defaults of TransMIL's constructor and of NystromAttention as TransLayer
// builds it.
const (
	DefaultTransMILDim        = 512 // TransLayer/PPEG dim
	TransMILHeads             = 8   // TransLayer: heads 8, dim_head dim/8
	DefaultPinvIterations     = 6   // pinv_iterations
	DefaultResidualConvKernel = 33  // NystromAttention residual_conv_kernel
	TransMILDropout           = 0.1 // TransLayer: NystromAttention(dropout=0.1)
)

// NystromConfig holds the TransMIL/NystromAttention constructor arguments
// that TransMIL fixes; zero means the official value. They are config keys
// of the transmil and nystromformer variants only (omitted otherwise).
type NystromConfig struct {
	Dim                int `json:"dim,omitempty"`                  // 512
	NumLandmarks       int `json:"num_landmarks,omitempty"`        // dim/2
	PinvIterations     int `json:"pinv_iterations,omitempty"`      // 6
	ResidualConvKernel int `json:"residual_conv_kernel,omitempty"` // 33
}

// The Nyström keys left out (0) take TransMIL's values; validateNystrom
// refuses negative ones.
func (c Config) nysDim() int       { return cmp.Or(c.NystromConfig.Dim, DefaultTransMILDim) }
func (c Config) nysLandmarks() int { return cmp.Or(c.NystromConfig.NumLandmarks, c.nysDim()/2) }
func (c Config) nysIters() int     { return cmp.Or(c.NystromConfig.PinvIterations, DefaultPinvIterations) }
func (c Config) nysKernel() int {
	return cmp.Or(c.NystromConfig.ResidualConvKernel, DefaultResidualConvKernel)
}

// validateNystrom checks the Nyström keys (and that other variants leave
// them out).
func validateNystrom(c Config, s VariantSpec) error {
	n := c.NystromConfig
	if !s.SquarePad {
		if n != (NystromConfig{}) {
			return fmt.Errorf("dim, num_landmarks, pinv_iterations, residual_conv_kernel are keys of the transmil and nystromformer variants, not %s", c.Variant)
		}
		return nil
	}
	if n.Dim < 0 || n.NumLandmarks < 0 || n.PinvIterations < 0 || n.ResidualConvKernel < 0 {
		return fmt.Errorf("dim %d, num_landmarks %d, pinv_iterations %d, residual_conv_kernel %d must not be negative", n.Dim, n.NumLandmarks, n.PinvIterations, n.ResidualConvKernel)
	}
	if d := c.nysDim(); d%TransMILHeads != 0 || d < 2*TransMILHeads {
		return fmt.Errorf("dim %d must be a multiple of %d heads (and at least %d)", d, TransMILHeads, 2*TransMILHeads)
	}
	if c.nysKernel()%2 == 0 {
		return fmt.Errorf("residual_conv_kernel %d must be odd", c.nysKernel())
	}
	return nil
}

// squareSide is TransMIL's _H = ceil(sqrt(n)).
func squareSide(n int) int {
	s := int(math.Ceil(math.Sqrt(float64(n))))
	for s*s < n {
		s++
	}
	for s > 1 && (s-1)*(s-1) >= n {
		s--
	}
	return s
}

// foldSquare maps attention over the side² square-padded slots back to the
// n patches: a patch repeated by the padding gets the mean of its two slots
// (the sum would mark the first side²−n patches of every slide, in raster
// order, as the most attended by construction).
func foldSquare(attn []float32, n int) []float32 {
	out := append([]float32(nil), attn[:n]...)
	for j := n; j < len(attn); j++ {
		out[j-n] = (out[j-n] + attn[j]) / 2
	}
	return out
}

// transmilParams are TransMIL's parameters in the official state_dict names
// (nystromformer: without pos_layer.*).
func transmilParams(c Config, s VariantSpec, l *paramList) {
	D, H := c.nysDim(), TransMILHeads
	ln := func(name string) {
		l.add(name+".weight", initOne, D)
		l.add(name+".bias", initZero, D)
	}
	l.add("_fc1.0.weight", initXavier, D, c.InDim)
	l.add("_fc1.0.bias", initZero, D)
	l.add("cls_token", initNormal1, 1, 1, D) // torch.randn
	for _, layer := range []string{"layer1", "layer2"} {
		ln(layer + ".norm")
		l.add(layer+".attn.to_qkv.weight", initXavier, 3*D, D)
		l.add(layer+".attn.to_out.0.weight", initXavier, D, D)
		l.add(layer+".attn.to_out.0.bias", initZero, D)
		l.add(layer+".attn.res_conv.weight", initConvDefault, H, 1, c.nysKernel(), 1)
	}
	if s.Name == VariantTransMIL {
		for _, k := range []struct {
			name string
			size int
		}{{"proj", 7}, {"proj1", 5}, {"proj2", 3}} {
			l.add("pos_layer."+k.name+".weight", initConvDefault, D, 1, k.size, k.size)
			l.add("pos_layer."+k.name+".bias", initZero, D)
		}
	}
	ln("norm")
	l.add("_fc2.weight", initXavier, c.Classes, D)
	l.add("_fc2.bias", initZero, c.Classes)
}

// transmilForward is the forward pass of transmil (ppeg) and nystromformer.
// he.feats holds side² rows, already square-padded by pack.
func (b *builder) transmilForward(he heInputs, ppeg bool) forwardOut {
	c := b.c
	D := c.nysDim()
	g := he.feats.Graph()
	slots := he.feats.Shape().Dimensions[0]
	side := squareSide(slots)
	if side*side != slots {
		Panicf("model: %s: %d patch slots is not a square", c.Variant, slots)
	}
	h := b.linear("_fc1.0", he.feats)
	h = Max(h, ScalarZero(g, dtypes.Float32))
	x := Concatenate([]*Node{Reshape(b.param("cls_token"), 1, D), h}, 0) // [T, D]
	x = Add(x, b.nystrom("layer1", b.layerNorm("layer1.norm", x), nil))
	if ppeg {
		x = b.ppeg(x, side)
	}
	var attn *Node
	x = Add(x, b.nystrom("layer2", b.layerNorm("layer2.norm", x), &attn))
	cls := Slice(b.layerNorm("norm", x), AxisRange(0, 1))
	logits := Reshape(b.linear("_fc2", cls), c.Classes)
	return forwardOut{logits: logits, attn: StopGradient(attn)}
}

// nystrom is NystromAttention on xs [T, D] (already normalised) → [T, D],
// with to_out's dropout in training.
// With attn non-nil it also sets *attn to the [CLS]→patch row of the
// approximate attention matrix attn1·pinv(attn2)·attn3 (what
// nystrom_attention returns with return_attn), averaged over heads, for the
// T−1 patch tokens.
func (b *builder) nystrom(name string, xs *Node, attn **Node) *Node {
	c := b.c
	g := xs.Graph()
	T, D := xs.Shape().Dimensions[0], xs.Shape().Dimensions[1]
	H, m := TransMILHeads, c.nysLandmarks()
	dh := D / H
	l := (T + m - 1) / m
	L := m * l
	pad := L - T
	x := xs
	if pad > 0 {
		x = Concatenate([]*Node{Zeros(g, shapesOf(dtypes.Float32, pad, D)), xs}, 0)
	}
	qkv := Einsum("ni,oi->no", x, b.param(name+".attn.to_qkv.weight")) // [L, 3D]
	y := TransposeAllAxes(Reshape(qkv, L, 3, H, dh), 1, 2, 0, 3)       // [3, H, L, dh]
	parts := Split(y, 0, 3)
	r := func(t *Node) *Node { return Reshape(t, H, L, dh) }
	q, k, v := r(parts[0]), r(parts[1]), r(parts[2])
	q = MulScalar(q, math.Pow(float64(dh), -0.5))
	landmarks := func(t *Node) *Node {
		return DivScalar(ReduceSum(Reshape(t, H, m, l, dh), 2), float64(l))
	}
	ql, kl := landmarks(q), landmarks(k)
	a1 := softmax(Einsum("hid,hjd->hij", q, kl))  // [H, L, m]
	a2 := softmax(Einsum("hid,hjd->hij", ql, kl)) // [H, m, m]
	a3 := softmax(Einsum("hid,hjd->hij", ql, k))  // [H, m, L]
	z := pinvIter(a2, c.nysIters())
	out := Einsum("him,hmd->hid", Einsum("him,hmn->hin", a1, z), Einsum("hmj,hjd->hmd", a3, v)) // [H, L, dh]
	out = Add(out, b.resConv(name, v))
	out = Reshape(TransposeAllAxes(out, 1, 0, 2), L, D)
	out = b.linear(name+".attn.to_out.0", out)
	if attn != nil {
		// Row of [CLS] (position pad) of attn1·pinv·attn3, patch columns.
		cls := Slice(a1, AxisRange(), AxisRange(pad, pad+1), AxisRange()) // [H, 1, m]
		row := Einsum("him,hmj->hij", Einsum("him,hmn->hin", cls, z), a3) // [H, 1, L]
		mean := DivScalar(ReduceSum(row, 0, 1), float64(H))               // [L]
		*attn = Slice(mean, AxisRange(pad+1, L))
	}
	return b.drop(Slice(out, AxisRange(pad, L))) // to_out.1, the Dropout
}

// pinvIter is nystrom_attention's moore_penrose_iter_pinv: z₀ = xᵀ /
// (max row-sum · max column-sum of |x|, over all heads), then
// z ← ¼ z (13I − xz(15I − xz(7I − xz))).
func pinvIter(x *Node, iters int) *Node {
	m := x.Shape().Dimensions[1]
	ax := Abs(x)
	col := ReduceSum(ax, -1)
	row := ReduceSum(ax, -2)
	z := Div(Transpose(x, 1, 2), Mul(ReduceAllMax(col), ReduceAllMax(row)))
	eye := make([][]float32, m)
	for i := range eye {
		eye[i] = make([]float32, m)
		eye[i][i] = 1
	}
	I := ExpandAxes(Const(x.Graph(), eye), 0)
	for range iters {
		xz := Einsum("hij,hjk->hik", x, z)
		t := Sub(MulScalar(I, 7), xz)
		t = Sub(MulScalar(I, 15), Einsum("hij,hjk->hik", xz, t))
		t = Sub(MulScalar(I, 13), Einsum("hij,hjk->hik", xz, t))
		z = MulScalar(Einsum("hij,hjk->hik", z, t), 0.25)
	}
	return z
}

// resConv is the value residual: per head, a convolution over the sequence
// with kernel size K and zero padding K/2 (Conv2d(heads, heads, (K, 1),
// groups=heads, bias=False)), on v [H, L, dh].
func (b *builder) resConv(name string, v *Node) *Node {
	H, L, dh := v.Shape().Dimensions[0], v.Shape().Dimensions[1], v.Shape().Dimensions[2]
	K := b.c.nysKernel()
	w := Reshape(b.param(name+".attn.res_conv.weight"), H, K)
	half := K / 2
	zeros := Zeros(v.Graph(), shapesOf(dtypes.Float32, H, half, dh))
	vp := Concatenate([]*Node{zeros, v, zeros}, 1) // [H, L+K−1, dh]
	var out *Node
	for t := 0; t < K; t++ {
		wt := Reshape(Slice(w, AxisRange(), AxisRange(t, t+1)), H, 1, 1)
		term := Mul(Slice(vp, AxisRange(), AxisRange(t, t+L), AxisRange()), wt)
		if out == nil {
			out = term
		} else {
			out = Add(out, term)
		}
	}
	return out
}

// ppeg is TransMIL's PPEG on x [1+side², D]: the patch tokens as a
// side×side×D grid (token 1+y·side+x at row y, column x) go through
// proj(7×7) + identity + proj1(5×5) + proj2(3×3), each depth-wise with
// bias and "same" zero padding; [CLS] passes unchanged. The three kernels
// and the identity are summed into one 7×7 kernel first (the same
// function).
func (b *builder) ppeg(x *Node, side int) *Node {
	g := x.Graph()
	D := x.Shape().Dimensions[1]
	cls := Slice(x, AxisRange(0, 1))
	feat := Reshape(Slice(x, AxisRange(1, 1+side*side)), side, side, D)
	kernel := func(name string, k int) *Node {
		w := Reshape(b.param("pos_layer."+name+".weight"), D, k, k)
		p := (7 - k) / 2
		if p == 0 {
			return w
		}
		zr := Zeros(g, shapesOf(dtypes.Float32, D, p, k))
		w = Concatenate([]*Node{zr, w, zr}, 1) // [D, 7, k]
		zc := Zeros(g, shapesOf(dtypes.Float32, D, 7, p))
		return Concatenate([]*Node{zc, w, zc}, 2) // [D, 7, 7]
	}
	center := make([]float32, 49)
	center[3*7+3] = 1
	K := Add(Add(kernel("proj", 7), kernel("proj1", 5)), kernel("proj2", 3))
	K = Add(K, ExpandAxes(Reshape(Const(g, center), 7, 7), 0))
	K = TransposeAllAxes(K, 1, 2, 0) // [7, 7, D]
	bias := Add(Add(b.param("pos_layer.proj.bias"), b.param("pos_layer.proj1.bias")), b.param("pos_layer.proj2.bias"))

	zr := Zeros(g, shapesOf(dtypes.Float32, 3, side, D))
	fp := Concatenate([]*Node{zr, feat, zr}, 0) // [side+6, side, D]
	zc := Zeros(g, shapesOf(dtypes.Float32, side+6, 3, D))
	fp = Concatenate([]*Node{zc, fp, zc}, 1) // [side+6, side+6, D]
	var out *Node
	for dy := 0; dy < 7; dy++ {
		for dx := 0; dx < 7; dx++ {
			kv := Reshape(Slice(K, AxisRange(dy, dy+1), AxisRange(dx, dx+1)), 1, 1, D)
			term := Mul(Slice(fp, AxisRange(dy, dy+side), AxisRange(dx, dx+side)), kv)
			if out == nil {
				out = term
			} else {
				out = Add(out, term)
			}
		}
	}
	out = Add(out, Reshape(bias, 1, 1, D))
	return Concatenate([]*Node{cls, Reshape(out, side*side, D)}, 0)
}
