package features

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The two input contracts an ONNX encoder can follow.
const (
	// ContractCLIP: `pixel_values` float32 [N,3,S,S], resized (PIL bicubic)
	// and normalised by the Go side; the Hugging Face CLIP export.
	ContractCLIP = "clip-pixel-values"
	// ContractRaw: raw patches uint8 [N,P,P,3]; resizing and normalisation
	// happen inside the graph (so a GPU does them).
	ContractRaw = "raw-uint8"
)

// CLIP's normalisation (OpenAI CLIP and PLIP).
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// Manifest describes an ONNX encoder; it lives beside the model as
// <model>.json. Without one the contract is inferred from the graph.
type Manifest struct {
	Name      string     `json:"name"`
	Contract  string     `json:"contract"`
	Input     string     `json:"input"`
	Output    string     `json:"output"`
	Dim       int        `json:"dim"`
	InputSize int        `json:"input_size"` // S of the CLIP contract
	PatchSize int        `json:"patch_size"` // P: side of the RGB patches fed in
	Mean      [3]float32 `json:"mean"`
	Std       [3]float32 `json:"std"`
	SHA256    string     `json:"sha256,omitempty"`
	Source    string     `json:"source,omitempty"`
	Precision string     `json:"precision,omitempty"`
	Opset     int        `json:"opset,omitempty"`
}

// ManifestPath is the manifest location for a model file.
func ManifestPath(model string) string {
	return strings.TrimSuffix(model, filepath.Ext(model)) + ".json"
}

// ReadManifest reads the manifest beside model; found is false when there
// is none.
func ReadManifest(model string) (m Manifest, found bool, err error) {
	b, err := os.ReadFile(ManifestPath(model))
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("features: %s: %w", ManifestPath(model), err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, false, fmt.Errorf("features: %s: %w", ManifestPath(model), err)
	}
	return m, true, nil
}

// Validate checks the manifest's own consistency.
func (m Manifest) Validate() error {
	switch {
	case m.Contract != ContractCLIP && m.Contract != ContractRaw:
		return fmt.Errorf("contract %q (want %s or %s)", m.Contract, ContractCLIP, ContractRaw)
	case m.Input == "" || m.Output == "":
		return errors.New("input and output names are required")
	case m.Dim <= 0:
		return fmt.Errorf("dim %d", m.Dim)
	case m.PatchSize <= 0:
		return fmt.Errorf("patch_size %d", m.PatchSize)
	case m.Contract == ContractCLIP && m.InputSize <= 0:
		return fmt.Errorf("input_size %d", m.InputSize)
	case !ValidName(m.Name):
		return fmt.Errorf("name %q must be letters, digits, '-', '_' or '.'", m.Name)
	}
	for _, s := range m.Std {
		if m.Contract == ContractCLIP && !(s > 0) {
			return fmt.Errorf("std %v must be positive", m.Std)
		}
	}
	return nil
}

// ValidName reports whether s can name an encoder (and so a feature file,
// features/<name>.h5): letters, digits, '-', '_' and '.', not "." or "..".
func ValidName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// FileSHA256 is the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
