package compare

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
	"github.com/her2wsi/her2wsi/model/metrics"
)

// Files written by Write, in the output folder.
const (
	FileJSON     = "compare.json"
	FileMarkdown = "compare.md"
	FileForest   = "forest.png"
	FileROC      = "roc.png"
)

// Write writes the comparison into dir (created if needed), each file
// atomically: compare.json, compare.md, forest.png and roc.png (the
// latter left out, with a note in compare.md, when no variant's
// macro-average ROC curve is defined).
func Write(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if err := atomicfile.WriteFileAtomic(filepath.Join(dir, FileJSON), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	title := fmt.Sprintf("Paired differences, %d test cases, %d seeds", r.TestCases, len(r.Seeds))
	if err := metrics.WriteForestPNG(filepath.Join(dir, FileForest), r.ForestGroups(), title, "difference A - B (95% CI; red: CI excludes 0)"); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	md := r.Markdown()
	if len(r.Bands) > 0 {
		names := make([]string, len(r.Bands))
		for i, b := range r.Bands {
			names[i] = b.Name
		}
		note := fmt.Sprintf("mean of %d runs; band: 95%% bootstrap", len(r.Seeds)*len(r.Folds))
		if err := metrics.WriteROCBandsPNG(filepath.Join(dir, FileROC), r.Bands, "Macro-average ROC, "+strings.Join(names, " vs "), note); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	} else {
		md += "\nNo ROC picture: no variant's macro-average ROC curve is defined on these test cases.\n"
	}
	if err := atomicfile.WriteFileAtomic(filepath.Join(dir, FileMarkdown), []byte(md), 0o644); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	return nil
}
