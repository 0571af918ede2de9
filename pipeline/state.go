package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

// StageState is one stage's entry in state.json.
type StageState struct {
	Status       string            `json:"status"` // done | failed
	Skipped      bool              `json:"skipped,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	Error        string            `json:"error,omitempty"`
	Params       json.RawMessage   `json:"params,omitempty"`
	ParamsSHA256 string            `json:"params_sha256,omitempty"`
	Inputs       map[string]string `json:"inputs,omitempty"`
	Key          string            `json:"key,omitempty"`     // freshness key (see Work.Fresh)
	Outputs      map[string]string `json:"outputs,omitempty"` // output file → size@mtime when recorded
	Finished     time.Time         `json:"finished"`
	Seconds      float64           `json:"seconds"`
	Version      string            `json:"her2wsi_version"`
}

// SlideState is state.json.
type SlideState struct {
	SlideID string                `json:"slide_id"`
	Stages  map[string]StageState `json:"stages"`
}

// stateMu serialises read-modify-write of state files within a process.
var stateMu sync.Mutex

// recordStage writes one stage's result into the slide's state.json
// (atomically): params are the stage's parameters (JSON-encodable), key
// and outputs the freshness key and the outputs' stamps (a skipped stage
// keeps its earlier record's).
func recordStage(work Work, r Result, params any, key string, outputs map[string]string) error {
	if r.ID == "" || r.NotRun {
		return nil
	}
	if _, err := os.Stat(work.SlideDir(r.ID)); err != nil {
		return nil // nothing was made for this slide (e.g. an input that cannot be read at all)
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	st, _ := work.ReadState(r.ID) // a damaged state.json is replaced
	s := StageState{Status: "done", Skipped: r.Skipped, Reason: r.Reason, Finished: time.Now().UTC(), Seconds: r.Elapsed.Seconds(), Version: Version}
	if r.Err != nil {
		s.Status, s.Error = "failed", r.Err.Error()
	}
	if params != nil {
		if b, err := json.Marshal(params); err == nil {
			s.Params = b
			sum := sha256.Sum256(b)
			s.ParamsSHA256 = hex.EncodeToString(sum[:])
		}
	}
	if rec, err := work.ReadSlideRecord(r.ID); err == nil {
		s.Inputs = map[string]string{"coords_sha256": rec.CoordsSHA256, "slide_fingerprint": rec.Fingerprint, "source_size": fmt.Sprint(rec.Slide.SizeBytes), "source_mod_time": rec.SourceModTime.Format(time.RFC3339Nano)}
	}
	if r.Err == nil {
		s.Key, s.Outputs = key, outputs
		if prev, ok := st.Stages[r.Stage]; ok && r.Skipped && outputs == nil && prev.Key == key {
			s.Outputs = prev.Outputs
		}
	}
	st.Stages[r.Stage] = s
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: %s: state.json: %w", r.ID, err)
	}
	if err := atomicfile.WriteFileAtomic(work.StateJSON(r.ID), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pipeline: %s: state.json: %w", r.ID, err)
	}
	return nil
}
