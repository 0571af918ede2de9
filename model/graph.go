package model

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // the GoMLX graph DSL reads best unqualified
)

// Mask fills of the reference code: anchor←patch attention uses −1e6 (the
// biases are added after the fill); patch←anchor and the IHC attentions
// −1e9.
const (
	fillAnchorPatch = -1e6
	fillOther       = -1e9
)

// heInputs are the graph inputs of one H&E slide, padded: N patch slots and
// K anchor slots (the [CLS] token is column 0 of the K×(N+1) matrices).
type heInputs struct {
	feats   *Node // [N, in] f32
	rd      *Node // [K, N+1] i32 distance bins; column 0 = [CLS] value
	pol     *Node // [K, N+1] i32 polar sectors; column 0 = [CLS] value
	colMask *Node // [N+1] f32: 1 where a column counts in the main orientation
	keep    *Node // [K, N+1] f32: 1 where anchor a and token j may attend each other
	rows    *Node // [N+1] f32: 1 for [CLS] and real patches (prompt-attention rows)
	// Variants without anchors only:
	mask *Node // [N] f32: 1 for real patches
	// Graph variants (NeedsGraph) only:
	nodes    *Node // [V, in] f32 node features (cluster means)
	src, dst *Node // [E] i32: edge e goes src[e] → dst[e] (padded edges 0 → 0)
	edgeMask *Node // [E] f32: 1 for real edges
	nodeMask *Node // [V] f32: 1 for real nodes
	assign   *Node // [N] i32: each patch slot's node
}

// ihcInputs are the IHC slide's inputs, padded to M patch slots.
type ihcInputs struct {
	feats *Node // [M, in] f32
	keep  *Node // [M+1] f32: [CLS] and real patches 1
}

// forwardOut is what one forward pass yields.
type forwardOut struct {
	logits    *Node // [C]
	logitsIHC *Node // [C] (nil without the IHC branch)
	attn      *Node // [N] [CLS]→patch attention of the last block (through the anchors; ABMIL: its attention)
	// loss is the variant's training loss given the i32 label (nil:
	// cross-entropy of logits, plus the IHC head's where there is one).
	loss func(label *Node) *Node
}

// builder holds the parameter nodes of one graph, by reference name, and
// for a training graph with dropout the random generator's state.
type builder struct {
	c    Config
	spec VariantSpec
	p    map[string]*Node
	rng  *Node // RNG state: dropout applies (nil: no dropout, as at prediction)
	// keeps are given dropout keep masks (1 keep, 0 drop), taken in the
	// order dropP is called instead of drawing from rng: the parity tests
	// feed the masks a reference drew.
	keeps []*Node
	// train: a training graph (BatchNorm uses batch statistics, recorded in
	// bnStats as mean and unbiased variance per module).
	train   bool
	bnStats []*Node
}

// drop is inverted dropout with the config's rate where the builder has a
// random state (training with dropout > 0), else x: each element is zeroed
// with probability p and the rest scaled by 1/(1−p), as torch's
// nn.Dropout in train mode. The reference applies it after every output
// projection (proj, proj_i, proj_i2: its proj_drop*) and in the MLPs after
// the GELU and after fc2; its attn_drop is built but never applied, so
// attention weights are not dropped here either.
func (b *builder) drop(x *Node) *Node { return b.dropP(x, b.c.dropoutRate(b.spec)) }

// dropP is drop with rate p (CLAM's attention nets drop 0.25 whenever
// dropout is set).
func (b *builder) dropP(x *Node, p float64) *Node {
	if (b.rng == nil && b.keeps == nil) || p <= 0 {
		return x
	}
	var keep *Node
	if b.keeps != nil {
		keep = GreaterThan(b.keeps[0], ScalarZero(x.Graph(), x.DType()))
		b.keeps = b.keeps[1:]
	} else {
		var u *Node
		b.rng, u = RandomUniform(b.rng, x.Shape())
		keep = GreaterOrEqual(u, Scalar(x.Graph(), x.DType(), p))
	}
	mask := Where(keep, Scalar(x.Graph(), x.DType(), 1/(1-p)), ScalarZero(x.Graph(), x.DType()))
	return Mul(x, StopGradient(mask))
}

func newBuilder(c Config, specs []ParamSpec, nodes []*Node) *builder {
	b := &builder{c: c, spec: c.Spec(), p: make(map[string]*Node, len(specs))}
	for i, s := range specs {
		b.p[s.Name] = nodes[i]
	}
	return b
}

func (b *builder) param(name string) *Node {
	n, ok := b.p[name]
	if !ok {
		Panicf("model: parameter %s not in the %s variant", name, b.c.Variant)
	}
	return n
}

// linear applies a torch Linear ([out,in] weight) to x [n, in].
func (b *builder) linear(name string, x *Node) *Node {
	w, bias := b.param(name+".weight"), b.param(name+".bias")
	y := Einsum("ni,oi->no", x, w)
	return Add(y, ExpandAxes(bias, 0))
}

// layerNorm over the last axis of x [n, D], biased variance as torch.
func (b *builder) layerNorm(name string, x *Node) *Node {
	mean := ReduceAndKeep(x, ReduceMean, -1)
	xc := Sub(x, mean)
	variance := ReduceAndKeep(Square(xc), ReduceMean, -1)
	y := Div(xc, Sqrt(AddScalar(variance, b.c.LayerNormEps)))
	return Add(Mul(y, ExpandAxes(b.param(name+".weight"), 0)), ExpandAxes(b.param(name+".bias"), 0))
}

// gelu is the exact (erf) GELU of torch's nn.GELU.
func gelu(x *Node) *Node {
	return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
}

func (b *builder) mlp(name string, x *Node) *Node {
	return b.drop(b.linear(name+".fc2", b.drop(gelu(b.linear(name+".fc1", x)))))
}

// qkv projects x [n, D] and splits it into q, k, v of [H, n, hd]
// (head-major: the layout the backend's batched matrix products take
// without transposing, so one transpose here replaces several later).
func (b *builder) qkv(name string, x *Node) (q, k, v *Node) {
	y := b.linear(name, x)
	n, D, H := x.Shape().Dimensions[0], b.c.EDim, b.c.Heads
	y = TransposeAllAxes(Reshape(y, n, 3, H, D/H), 1, 2, 0, 3) // [3, H, n, hd]
	parts := Split(y, 0, 3)
	r := func(t *Node) *Node { return Reshape(t, H, n, D/H) }
	return r(parts[0]), r(parts[1]), r(parts[2])
}

// softmax over the last axis with the analytic gradient
// y ⊙ (v − Σ v⊙y). GoMLX's Softmax differentiates its decomposed form, which
// recomputes the exponentials in the backward pass (a third of a training
// step on the pure-Go backend); this keeps the fused forward and a cheap
// backward. The value is exactly the fused softmax (x − x adds zero).
func softmax(x *Node) *Node {
	y := StopGradient(Softmax(x, -1))
	xc := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		return Mul(y, Sub(v, ReduceAndKeep(Mul(v, y), ReduceSum, -1)))
	})
	return Add(y, Sub(xc, StopGradient(xc)))
}

// attend computes softmax(logits)·v and merges heads: logits [H, a, j],
// v [H, j, hd] → [a, D].
func (b *builder) attend(logits, v *Node) *Node {
	a := softmax(logits)
	out := Einsum("haj,hjd->had", a, v)
	return Reshape(TransposeAllAxes(out, 1, 0, 2), out.Shape().Dimensions[1], b.c.EDim)
}

// scores is q·kᵀ·scale: q [H, a, hd], k [H, j, hd] → [H, a, j].
func (b *builder) scores(q, k *Node) *Node {
	return MulScalar(Einsum("had,hjd->haj", q, k), 1/math.Sqrt(float64(b.c.HeadDim())))
}

// fillWhere returns x where keep (broadcast over heads) is 1 and fill where
// it is 0, exactly (keep is 0 or 1).
func fillWhere(x, keep *Node, fill float64) *Node {
	cond := GreaterThan(keep, ScalarZero(keep.Graph(), keep.DType()))
	cond = BroadcastToDims(ExpandAxes(cond, 0), x.Shape().Dimensions...)
	return Where(cond, x, Scalar(x.Graph(), x.DType(), fill))
}

// forward builds the model's forward pass, as the variant's spec does. ihc
// is nil for the H&E-only forward. withPrompts says whether the
// patch←prompt term is used (false for PAMA, and for the H&E-only forward
// under ReferenceEval).
func (b *builder) forward(he heInputs, ihc *ihcInputs, withPrompts bool) forwardOut {
	return b.spec.forward(b, he, ihc, withPrompts)
}

// anchorForward is the forward pass of the anchor-attention variants (IPCA
// and its ablations): the prompt path where the spec has prompts, the IHC
// branch where ihc is given.
func (b *builder) anchorForward(he heInputs, ihc *ihcInputs, withPrompts bool) forwardOut {
	c := b.c
	D, H := c.EDim, c.Heads
	g := he.feats.Graph()
	K := he.rd.Shape().Dimensions[0]

	// Tokens: [CLS] + patches; K kernel tokens; IHC [CLS] + IHC patches.
	x := Concatenate([]*Node{Reshape(b.param("cls_token"), 1, D), b.linear("patch_embed", he.feats)}, 0)
	kx := BroadcastToDims(Reshape(b.param("kernel_token"), 1, D), K, D)
	var ix *Node
	if ihc != nil {
		ix = Concatenate([]*Node{Reshape(b.param("cls_token_i"), 1, D), b.linear("patch_embed_i", ihc.feats)}, 0)
	}

	// Per-forward constants: one-hot polar sectors with the orientation
	// column mask, and the transposed keep mask.
	polOH := OneHot(he.pol, PolarBins, dtypes.Float32)                   // [K, N+1, 8]
	polOHMasked := Mul(polOH, ExpandAxes(ExpandAxes(he.colMask, 0), -1)) // [K, N+1, 8]
	keepT := Transpose(he.keep, 0, 1)                                    // [N+1, K]

	var lastAttn *Node
	for i := 0; i < c.Depth; i++ {
		p := "blocks." + itoa(i) + "."
		xn, kn := b.layerNorm(p+"norm1", x), b.layerNorm(p+"norm1", kx)
		q, k, v := b.qkv(p+"attn.qkv", xn)
		kq, kk, kv := b.qkv(p+"attn.qkv", kn)

		// Anchor←patch (eq. 1): scaled logits, then the main orientation of
		// each (head, anchor) from Σ|logit| per sector (no gradient through
		// the argmax), the re-oriented polar bias and the distance bias.
		// The biases are added after the 1/√d_head scaling and the mask
		// fill, as the reference code does; the paper's eq. 1/3 put them
		// inside (Q·Kᵀ + Φ)/√d_e — the same family of functions with Φ
		// rescaled, but another initial bias strength (README "Bias terms").
		L := b.scores(kq, k) // [H, K, N+1]
		S := Einsum("haj,ajo->hao", Abs(StopGradient(L)), polOHMasked)
		main := ArgMax(S, -1, dtypes.Int32) // [H, K]
		// Rotated polar table T[h,a,o] = polar_emb[(o − main[h,a]) mod 8].
		o := Iota(g, shapesOf(dtypes.Int32, 1, 1, PolarBins), 2)
		rot := Sub(o, ExpandAxes(main, -1))
		rot = Where(LessThan(rot, ScalarZero(g, dtypes.Int32)), AddScalar(rot, PolarBins), rot) // [H, K, 8]
		polTable := Reshape(Gather(b.param(p+"attn.polar_emb.weight"), ExpandAxes(rot, -1)), H, K, PolarBins)
		polBias := Einsum("ajo,hao->haj", polOH, polTable)                            // [H, K, N+1]
		distBias := Gather(b.param(p+"attn.dis_embed.weight"), ExpandAxes(he.rd, -1)) // [K, N+1, H]
		distBias = TransposeAllAxes(distBias, 2, 0, 1)                                // [H, K, N+1]
		bias := Add(polBias, distBias)
		aLogits := Add(fillWhere(L, he.keep, fillAnchorPatch), bias)
		kOut := b.drop(b.linear(p+"attn.proj", b.attend(aLogits, v)))

		// Patch←anchor (eq. 3) with the transposed biases.
		Lx := b.scores(q, kk) // [H, N+1, K]
		xLogits := Add(fillWhere(Lx, keepT, fillOther), TransposeAllAxes(bias, 0, 2, 1))
		if i == c.Depth-1 {
			lastAttn = clsPatchAttention(Softmax(xLogits, -1), Softmax(aLogits, -1))
		}
		xOut := b.drop(b.linear(p+"attn.proj", b.attend(xLogits, kv)))

		var pq, pk, pv *Node
		if b.spec.HasPrompts && (withPrompts || ix != nil) {
			pn := b.layerNorm(p+"norm1_i", Reshape(b.param(p+"kernel_token_i"), c.Prompts, D))
			pq, pk, pv = b.qkv(p+"attn.qkv_i", pn)
		}
		if withPrompts {
			// Patch←prompt (eq. 6), no bias; proj applied to each term (eq. 7).
			// Padded patch rows are masked as the reference does (uniform
			// attention): under ReferencePadding the padded tokens reach the
			// next block's main orientation.
			pl := b.scores(q, pk) // [H, N+1, P]
			rowKeep := BroadcastToDims(ExpandAxes(ExpandAxes(he.rows, 0), -1), pl.Shape().Dimensions...)
			pl = Where(GreaterThan(rowKeep, ScalarZero(g, dtypes.Float32)), pl, Scalar(g, dtypes.Float32, fillOther))
			xOut = Add(xOut, b.drop(b.linear(p+"attn.proj", b.attend(pl, pv))))
		}

		if ix != nil {
			// IHC branch (eqs. 4–5): prompts attend IHC tokens, then IHC
			// tokens attend the result.
			ixn := b.layerNorm(p+"norm1_i", ix)
			iq, ik, iv := b.qkv(p+"attn.qkv_i", ixn)
			pLogits := fillWhere(b.scores(pq, ik), ExpandAxes(ihc.keep, 0), fillOther) // [H, P, M+1]
			pOut := b.drop(b.linear(p+"attn.proj_i", b.attend(pLogits, iv)))
			_, k2, v2 := b.qkv(p+"attn.qkv_i2", pOut)
			iOut := b.drop(b.linear(p+"attn.proj_i2", b.attend(b.scores(iq, k2), v2)))
			ix = Add(ixn, iOut)
			ix = Add(ix, b.mlp(p+"mlp_i", b.layerNorm(p+"norm2_i", ix)))
		}

		// Residuals on the normalised tokens, then the shared MLP.
		x = Add(xn, xOut)
		kx = Add(kn, kOut)
		x = Add(x, b.mlp(p+"mlp", b.layerNorm(p+"norm2", x)))
		kx = Add(kx, b.mlp(p+"mlp", b.layerNorm(p+"norm2", kx)))
	}
	cls := Slice(b.layerNorm("norm", x), AxisRange(0, 1))
	out := forwardOut{logits: Reshape(b.linear("head", cls), c.Classes)}
	if ix != nil {
		icls := Slice(b.layerNorm("norm_i", ix), AxisRange(0, 1))
		out.logitsIHC = Reshape(b.linear("head_i", icls), c.Classes)
	}
	if lastAttn == nil { // depth 0
		N := he.feats.Shape().Dimensions[0]
		lastAttn = Zeros(g, shapesOf(dtypes.Float32, N))
	}
	out.attn = StopGradient(lastAttn)
	return out
}

// clsPatchAttention composes the last block's [CLS]→anchor attention with
// the anchor→patch attention and averages the heads: how much [CLS] draws
// from each patch through the anchors. xa [H, N+1, K], ap [H, K, N+1] → [N].
func clsPatchAttention(xa, ap *Node) *Node {
	H := xa.Shape().Dimensions[0]
	cls := Slice(xa, AxisRange(), AxisRange(0, 1))   // [H, 1, K]
	per := Einsum("hik,hkj->hij", cls, ap)           // [H, 1, N+1]
	m := DivScalar(ReduceSum(per, 0, 1), float64(H)) // [N+1]
	return Slice(m, AxisRange(1, m.Shape().Dimensions[0]))
}

// abmil is gated-attention MIL (CLAM-SB style): h = ReLU(fc(x)); attention
// score = w·(tanh(Va h) ⊙ σ(Ub h)); softmax over real patches; the
// attention-weighted mean of h goes to the classifier.
func (b *builder) abmil(he heInputs) forwardOut {
	h := b.drop(Max(b.linear("abmil.fc", he.feats), ScalarZero(he.feats.Graph(), dtypes.Float32))) // CLAM's dropout after fc
	gate := Mul(Tanh(b.linear("abmil.attention_a", h)), Sigmoid(b.linear("abmil.attention_b", h)))
	s := Reshape(b.linear("abmil.attention_c", gate), -1) // [N]
	s = fillWhere2(s, he.mask, fillOther)
	a := Softmax(s, -1)
	z := Einsum("n,nd->d", a, h)
	logits := b.linear("abmil.classifier", ExpandAxes(z, 0))
	return forwardOut{logits: Reshape(logits, b.c.Classes), attn: StopGradient(a)}
}

// fillWhere2 is fillWhere without head broadcasting (same shapes).
func fillWhere2(x, keep *Node, fill float64) *Node {
	cond := GreaterThan(keep, ScalarZero(keep.Graph(), keep.DType()))
	return Where(cond, x, Scalar(x.Graph(), x.DType(), fill))
}

// crossEntropy is −log softmax(logits)[label]; label is an i32 scalar.
func crossEntropy(logits, label *Node, classes int) *Node {
	ls := LogSoftmax(logits, -1)
	oh := OneHot(label, classes, dtypes.Float32)
	return Neg(ReduceSum(Mul(ls, oh)))
}
