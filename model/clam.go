package model

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // the GoMLX graph DSL reads best unqualified
)

// CLAM (Lu et al. 2021, mahmoodlab/CLAM models/model_clam.py) as two
// variants: clam_sb (one attention branch, one bag classifier) and clam_mb
// (one attention branch and one single-output bag classifier per class).
// The parameters carry the official state_dict names, so a checkpoint of the
// official code converted to safetensors loads here and ours loads there.

// Variant names.
const (
	VariantCLAMSB = "clam_sb"
	VariantCLAMMB = "clam_mb"
)

// Defaults of the official constructor (CLAM_SB/CLAM_MB) and main.py.
const (
	DefaultCLAMSizeArg   = "small"
	DefaultCLAMKSample   = 8   // k_sample (main.py --B)
	DefaultCLAMBagWeight = 0.7 // main.py --bag_weight
	// clamAttnDropout is the rate Attn_Net and Attn_Net_Gated drop at
	// whenever dropout is set, whatever its value.
	clamAttnDropout = 0.25
)

// clamSizes is the official size_dict without its first entry (in_dim):
// the fc width and the attention width.
var clamSizes = map[string][2]int{"small": {512, 256}, "big": {512, 384}}

// CLAMConfig holds the keys of the official constructor (gate, size_arg,
// k_sample, subtyping; dropout is Config.Dropout, embed_dim is in_dim,
// n_classes is classes) and the training loop's bag_weight. Left out (zero),
// each takes the official default: gate true, size_arg "small", k_sample 8,
// bag_weight 0.7, subtyping false.
type CLAMConfig struct {
	Gate      *bool    `json:"gate,omitempty"`
	SizeArg   string   `json:"size_arg,omitempty"`
	KSample   int      `json:"k_sample,omitempty"`
	BagWeight *float64 `json:"bag_weight,omitempty"`
	Subtyping bool     `json:"subtyping,omitempty"`
}

// CLAMGate says whether the attention is gated (Attn_Net_Gated).
func (c CLAMConfig) CLAMGate() bool { return c.Gate == nil || *c.Gate }

// CLAMSize is size_arg ("small" or "big").
func (c CLAMConfig) CLAMSize() string {
	if c.SizeArg == "" {
		return DefaultCLAMSizeArg
	}
	return c.SizeArg
}

// CLAMKSample is k_sample.
func (c CLAMConfig) CLAMKSample() int {
	if c.KSample == 0 {
		return DefaultCLAMKSample
	}
	return c.KSample
}

// CLAMBagWeight is bag_weight: loss = w·CE(bag) + (1−w)·instance loss.
func (c CLAMConfig) CLAMBagWeight() float64 {
	if c.BagWeight == nil {
		return DefaultCLAMBagWeight
	}
	return *c.BagWeight
}

func clamCheck(c Config) []error {
	var errs []error
	if _, ok := clamSizes[c.CLAMSize()]; !ok {
		errs = append(errs, fmt.Errorf("size_arg %q (small or big)", c.SizeArg))
	}
	if c.CLAMKSample() < 1 {
		errs = append(errs, fmt.Errorf("k_sample %d (≥ 1)", c.KSample))
	}
	if w := c.CLAMBagWeight(); w < 0 || w > 1 {
		errs = append(errs, fmt.Errorf("bag_weight %g (0 ≤ w ≤ 1)", w))
	}
	return errs
}

// clamBranches is the number of attention branches: 1 (SB) or classes (MB).
func clamBranches(c Config) int {
	if c.Variant == VariantCLAMMB {
		return c.Classes
	}
	return 1
}

// clamAttnOut is the state_dict name of the plain attention's output layer:
// Attn_Net appends its Dropout(0.25) only when dropout is set, which shifts
// the Linear after it.
func clamAttnOut(c Config, s VariantSpec) string {
	if c.dropoutRate(s) > 0 {
		return "attention_net.3.module.3"
	}
	return "attention_net.3.module.2"
}

// torchLinear is a torch nn.Linear with torch's default initialisation.
func (l *paramList) torchLinear(name string, in, out int) {
	l.ps = append(l.ps, ParamSpec{Name: name + ".weight", Shape: []int{out, in}, Init: initTorchLinear, FanIn: in},
		ParamSpec{Name: name + ".bias", Shape: []int{out}, Init: initTorchLinear, FanIn: in})
}

// clamParams lists CLAM's parameters in the official state_dict order.
// attention_net is Sequential(Linear, ReLU, Dropout, attention module), so
// the attention module is index 3.
func clamParams(c Config, s VariantSpec, l *paramList) {
	sz := clamSizes[c.CLAMSize()]
	H, D, C, nA := sz[0], sz[1], c.Classes, clamBranches(c)
	l.torchLinear("attention_net.0", c.InDim, H)
	if c.CLAMGate() {
		l.torchLinear("attention_net.3.attention_a.0", H, D)
		l.torchLinear("attention_net.3.attention_b.0", H, D)
		l.torchLinear("attention_net.3.attention_c", D, nA)
	} else {
		l.torchLinear("attention_net.3.module.0", H, D)
		l.torchLinear(clamAttnOut(c, s), D, nA)
	}
	if c.Variant == VariantCLAMMB {
		for k := 0; k < C; k++ {
			l.torchLinear("classifiers."+itoa(k), H, 1)
		}
	} else {
		l.torchLinear("classifiers", H, C)
	}
	for k := 0; k < C; k++ {
		l.torchLinear("instance_classifiers."+itoa(k), H, 2)
	}
}

// clamForward is CLAM's forward pass: h = ReLU(fc(x)); attention scores
// (gated: attention_c(tanh(a(h)) ⊙ σ(b(h))), plain: module(h)) per branch,
// softmax over the real patches, M = A·h, then the bag classifier(s). The
// attention shown is the branch's softmax (SB) or the predicted class's
// branch (MB), as CLAM's heatmaps take A[Y_hat]. The training loss is
// bag_weight·CE + (1−bag_weight)·instance loss (out.loss).
func (b *builder) clamForward(he heInputs, _ *ihcInputs, _ bool) forwardOut {
	c := b.c
	g := he.feats.Graph()
	C, nA := c.Classes, clamBranches(c)
	N := he.feats.Shape().Dimensions[0]
	// Dropout (training only): Dropout(dropout) after the fc's ReLU, and
	// the attention nets' fixed Dropout(0.25) after tanh (and sigmoid)
	// whenever dropout is set, as the official modules.
	attnDrop := 0.0
	if c.dropoutRate(b.spec) > 0 {
		attnDrop = clamAttnDropout
	}
	h := b.drop(Max(b.linear("attention_net.0", he.feats), ScalarZero(g, dtypes.Float32))) // [N, 512]
	var s *Node                                                                            // [N, nA]
	if c.CLAMGate() {
		ta := b.dropP(Tanh(b.linear("attention_net.3.attention_a.0", h)), attnDrop)
		sb := b.dropP(Sigmoid(b.linear("attention_net.3.attention_b.0", h)), attnDrop)
		s = b.linear("attention_net.3.attention_c", Mul(ta, sb))
	} else {
		s = b.linear(clamAttnOut(c, b.spec), b.dropP(Tanh(b.linear("attention_net.3.module.0", h)), attnDrop))
	}
	s = Transpose(s, 0, 1) // [nA, N]
	keep := BroadcastToDims(ExpandAxes(he.mask, 0), nA, N)
	a := softmax(fillWhere2(s, keep, fillOther)) // [nA, N]
	m := Einsum("an,nd->ad", a, h)               // [nA, 512]

	var logits, attn *Node
	if c.Variant == VariantCLAMMB {
		ws := make([]*Node, C)
		bs := make([]*Node, C)
		for k := 0; k < C; k++ {
			ws[k] = b.param("classifiers." + itoa(k) + ".weight") // [1, 512]
			bs[k] = b.param("classifiers." + itoa(k) + ".bias")   // [1]
		}
		logits = Add(Einsum("cd,cd->c", m, Concatenate(ws, 0)), Concatenate(bs, 0))
		pred := ArgMax(StopGradient(logits), 0, dtypes.Int32)
		attn = Reshape(Gather(a, Reshape(pred, 1, 1)), N)
	} else {
		logits = Reshape(b.linear("classifiers", m), C)
		attn = Reshape(a, N)
	}
	out := forwardOut{logits: logits, attn: StopGradient(attn)}
	out.loss = func(label *Node) *Node {
		w := c.CLAMBagWeight()
		bag := crossEntropy(logits, label, C)
		return Add(MulScalar(bag, w), MulScalar(b.clamInstanceLoss(h, a, he.mask, label), 1-w))
	}
	return out
}

// clamInstanceLoss is CLAM's instance-level clustering loss. For each class
// k, on its attention branch (SB: the one branch): the k_sample patches of
// highest attention and the k_sample of lowest go through
// instance_classifiers[k]; for the label's class the targets are 1 (top)
// and 0 (bottom), CE averaged over the 2·k_sample; for the other classes,
// only when subtyping, the top patches with target 0. The terms are summed,
// and divided by the number of classes when subtyping. No gradient flows
// through the selection (torch.topk indices). A slide with fewer real
// patches than k_sample (where the official code fails in topk) uses the
// patches it has: selections that land on padding weigh zero.
func (b *builder) clamInstanceLoss(h, a, mask, label *Node) *Node {
	c := b.c
	g := h.Graph()
	C := c.Classes
	N := h.Shape().Dimensions[0]
	k := min(c.CLAMKSample(), N)
	keep := GreaterThan(mask, ScalarZero(g, dtypes.Float32))
	oh := OneHot(label, C, dtypes.Float32) // [C]
	type pick struct{ top, bot, wTop, wBot, hTop, hBot *Node }
	picks := map[int]pick{}
	pickOf := func(branch int) pick {
		if p, ok := picks[branch]; ok {
			return p
		}
		ab := StopGradient(Reshape(Slice(a, AxisRange(branch, branch+1)), N))
		_, top := TopK(Where(keep, ab, Scalar(g, dtypes.Float32, -1)), k, 0)
		_, bot := BottomK(Where(keep, ab, Scalar(g, dtypes.Float32, 2)), k, 0)
		top, bot = ConvertDType(top, dtypes.Int32), ConvertDType(bot, dtypes.Int32)
		p := pick{top: top, bot: bot}
		p.wTop = Gather(mask, ExpandAxes(top, -1)) // [k]
		p.wBot = Gather(mask, ExpandAxes(bot, -1))
		p.hTop = Gather(h, ExpandAxes(top, -1)) // [k, 512]
		p.hBot = Gather(h, ExpandAxes(bot, -1))
		picks[branch] = p
		return p
	}
	// wmean is Σ w·x / Σ w.
	wmean := func(x, w *Node) *Node { return Div(ReduceAllSum(Mul(x, w)), ReduceAllSum(w)) }
	var total *Node
	for cls := 0; cls < C; cls++ {
		branch := 0
		if c.Variant == VariantCLAMMB {
			branch = cls
		}
		p := pickOf(branch)
		name := "instance_classifiers." + itoa(cls)
		lsTop := LogSoftmax(b.linear(name, p.hTop), -1) // [k, 2]
		lsBot := LogSoftmax(b.linear(name, p.hBot), -1)
		col := func(x *Node, j int) *Node { return Reshape(Slice(x, AxisRange(), AxisRange(j, j+1)), k) }
		// In the class: top → 1, bottom → 0, mean over the 2k.
		in := Div(Neg(Add(ReduceAllSum(Mul(col(lsTop, 1), p.wTop)), ReduceAllSum(Mul(col(lsBot, 0), p.wBot)))),
			Add(ReduceAllSum(p.wTop), ReduceAllSum(p.wBot)))
		isCls := Reshape(Slice(oh, AxisRange(cls, cls+1)))
		term := Mul(isCls, in)
		if c.Subtyping {
			// Out of the class: top → 0.
			out := Neg(wmean(col(lsTop, 0), p.wTop))
			term = Add(term, Mul(OneMinus(isCls), out))
		}
		if total == nil {
			total = term
		} else {
			total = Add(total, term)
		}
	}
	if c.Subtyping {
		total = DivScalar(total, float64(C))
	}
	return total
}

// clamLegacyName offers current names for the state_dict names of CLAM
// before its 2024 rewrite, whose attention_net appended Dropout only when
// dropout was set (the attention module at index 2 without it), and for
// the plain attention's output layer, whose index (2 or 3) follows dropout
// in every version: a checkpoint trained with dropout predicts here with
// dropout 0 and the other way round.
func clamLegacyName(n string) []string {
	const old, cur = "attention_net.2.", "attention_net.3."
	if strings.HasPrefix(n, old) {
		n = cur + n[len(old):]
	}
	out := []string{n}
	for _, sw := range [][2]string{{cur + "module.2.", cur + "module.3."}, {cur + "module.3.", cur + "module.2."}} {
		if strings.HasPrefix(n, sw[0]) {
			out = append(out, sw[1]+n[len(sw[0]):])
		}
	}
	return out
}

// clamNormalize writes the official defaults into the CLAM keys left out.
func clamNormalize(c *Config) {
	g, w := c.CLAMGate(), c.CLAMBagWeight()
	c.Gate, c.BagWeight = &g, &w
	c.SizeArg, c.KSample = c.CLAMSize(), c.CLAMKSample()
}
