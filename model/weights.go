package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/her2wsi/her2wsi/internal/safetensors"
)

// Weight files are safetensors holding the parameters under the reference
// PyTorch state_dict names and layouts, plus metadata: "her2wsi_config"
// (the model-config JSON) and "format" = "pt" so torch loaders accept it.

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func weightsFile(c Config, p *Params, meta map[string]string) (*safetensors.File, error) {
	cj, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{"format": "pt", "her2wsi_config": string(cj)}}
	for k, v := range meta {
		f.Metadata[k] = v
	}
	for i, s := range p.Specs {
		f.Tensors[s.Name] = safetensors.FromFloat32(s.Shape, p.Values[i])
		if sp := c.Spec(); sp.saveAlias != nil {
			if a := sp.saveAlias(s.Name); a != "" {
				f.Tensors[a] = safetensors.FromFloat32(s.Shape, p.Values[i])
			}
		}
	}
	if sp := c.Spec(); sp.extra != nil {
		for n, v := range sp.extra(c) {
			f.Tensors[n] = safetensors.FromInt64([]int{}, v)
		}
	}
	return f, nil
}

// SaveWeights writes p (of config c) as safetensors, atomically.
func SaveWeights(path string, c Config, p *Params, meta map[string]string) error {
	f, err := weightsFile(c, p, meta)
	if err != nil {
		return fmt.Errorf("model: %s: %w", path, err)
	}
	if err := safetensors.Write(path, f); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

// ModelID names a weight file's contents: the first 12 hex digits of the
// SHA-256 of its parameter values (in Specs order).
func ModelID(p *Params) string {
	h := sha256.New()
	var buf [4]byte
	for i, v := range p.Values {
		h.Write([]byte(p.Specs[i].Name))
		for _, x := range v {
			u := math.Float32bits(x)
			buf[0], buf[1], buf[2], buf[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// LoadWeights reads a weight file for config c. The file may hold more
// tensors than c needs only when c is an H&E-only variant (no IHC branch)
// reading a full IPCA file; every tensor c needs must be there with its
// exact shape. F16/BF16 files are widened to float32.
func LoadWeights(path string, c Config) (*Params, error) {
	spec, err := VariantOf(c.Variant)
	if err != nil {
		return nil, fmt.Errorf("model: weights %s: %w", path, err)
	}
	p := NewParams(c)
	f, err := safetensors.Read(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if spec.legacyName != nil {
		renameLegacy(f, p, spec.legacyName)
	}
	if err := setFromFile(path, f, p, !spec.HasIHC); err != nil {
		return nil, err
	}
	return p, nil
}

// renameLegacy gives a tensor that the parameters do not name the first
// current name legacy offers for it that the parameters have and the file
// lacks (state_dict names of older versions of the official code).
func renameLegacy(f *safetensors.File, p *Params, legacy func(string) []string) {
	for _, n := range f.Names() {
		if p.Get(n) != nil {
			continue
		}
		for _, to := range legacy(n) {
			if _, taken := f.Tensors[to]; to == n || taken || p.Get(to) == nil {
				continue
			}
			f.Tensors[to] = f.Tensors[n]
			delete(f.Tensors, n)
			break
		}
	}
}

// LoadWeightsInto fills p from a weight file.
func LoadWeightsInto(path string, p *Params, allowExtra bool) error {
	f, err := safetensors.Read(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return setFromFile(path, f, p, allowExtra)
}

func setFromFile(path string, f *safetensors.File, p *Params, allowExtra bool) error {
	var names []string
	for _, n := range f.Names() {
		if !isStateName(n) {
			continue // optimiser state in checkpoints
		}
		names = append(names, n)
	}
	err := p.SetFrom(func(name string) ([]int, []float32, bool, error) {
		t, ok := f.Tensors[name]
		if !ok {
			return nil, nil, false, nil
		}
		v, err := t.Float32()
		return t.Shape, v, true, err
	}, names, allowExtra)
	if err != nil {
		return fmt.Errorf("model: weights %s: %w", path, err)
	}
	return nil
}

// ConfigOfWeights returns the model config stored in a weight file written
// here (ok false for files from elsewhere, e.g. the reference code).
func ConfigOfWeights(path string) (Config, bool, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return Config{}, false, fmt.Errorf("model: %w", err)
	}
	cj, ok := f.Metadata["her2wsi_config"]
	if !ok {
		return Config{}, false, nil
	}
	c, err := ParseConfig([]byte(cj))
	if err != nil {
		return Config{}, false, fmt.Errorf("model: weights %s: %w", path, err)
	}
	return c, true, nil
}

const (
	prefM = "optimizer.m."
	prefV = "optimizer.v."
)

func isStateName(n string) bool {
	return len(n) < len(prefM) || (n[:len(prefM)] != prefM && n[:len(prefV)] != prefV)
}

// trainState is what a checkpoint records besides tensors.
type trainState struct {
	Epoch     int     `json:"epoch"` // epochs completed
	BestEpoch int     `json:"best_epoch"`
	BestAUC   float64 `json:"best_auc"`
}

func saveCheckpoint(path string, c Config, tc TrainConfig, p *Params, opt *Adam, st trainState) error {
	f, err := weightsFile(c, p, nil)
	if err != nil {
		return fmt.Errorf("model: checkpoint %s: %w", path, err)
	}
	for i, s := range p.Specs {
		f.Tensors[prefM+s.Name] = safetensors.FromFloat32(s.Shape, opt.M[i])
		f.Tensors[prefV+s.Name] = safetensors.FromFloat32(s.Shape, opt.V[i])
	}
	tj, _ := json.Marshal(tc)
	f.Metadata["her2wsi_train"] = string(tj)
	f.Metadata["optimizer_step"] = strconv.FormatInt(opt.Step, 10)
	f.Metadata["epoch"] = strconv.Itoa(st.Epoch)
	f.Metadata["best_epoch"] = strconv.Itoa(st.BestEpoch)
	f.Metadata["best_auc"] = strconv.FormatFloat(st.BestAUC, 'g', -1, 64)
	if err := safetensors.Write(path, f); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

func loadCheckpoint(path string, c Config, tc TrainConfig, p *Params, opt *Adam) (trainState, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return trainState{}, fmt.Errorf("model: %w", err)
	}
	cj, _ := json.Marshal(c)
	tj, _ := json.Marshal(tc)
	if f.Metadata["her2wsi_config"] != string(cj) || f.Metadata["her2wsi_train"] != string(tj) {
		return trainState{}, fmt.Errorf("model: checkpoint %s was made with another model or training config; use a new run folder or delete it", path)
	}
	if err := setFromFile(path, f, p, false); err != nil {
		return trainState{}, err
	}
	for i, s := range p.Specs {
		for _, mv := range []struct {
			pref string
			dst  []float32
		}{{prefM, opt.M[i]}, {prefV, opt.V[i]}} {
			t, ok := f.Tensors[mv.pref+s.Name]
			if !ok {
				return trainState{}, fmt.Errorf("model: checkpoint %s: missing %s%s", path, mv.pref, s.Name)
			}
			v, err := t.Float32()
			if err != nil || len(v) != len(mv.dst) {
				return trainState{}, fmt.Errorf("model: checkpoint %s: bad %s%s", path, mv.pref, s.Name)
			}
			copy(mv.dst, v)
		}
	}
	var st trainState
	var errs [4]error
	opt.Step, errs[0] = strconv.ParseInt(f.Metadata["optimizer_step"], 10, 64)
	st.Epoch, errs[1] = strconv.Atoi(f.Metadata["epoch"])
	st.BestEpoch, errs[2] = strconv.Atoi(f.Metadata["best_epoch"])
	st.BestAUC, errs[3] = strconv.ParseFloat(f.Metadata["best_auc"], 64)
	for _, e := range errs {
		if e != nil {
			return trainState{}, fmt.Errorf("model: checkpoint %s: bad metadata: %w", path, e)
		}
	}
	return st, nil
}
