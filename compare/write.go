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
	title := fmt.Sprintf("Paired differences, %d test cases, %s", r.TestCases, plural(len(r.Seeds), "seed"))
	if err := metrics.WriteForestPNG(filepath.Join(dir, FileForest), r.ForestGroups(), title, "difference A - B (95% CI; red: CI excludes 0)"); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	md := r.Markdown()
	if len(r.Bands) > 0 {
		names := make([]string, len(r.Bands))
		for i, b := range r.Bands {
			names[i] = b.Name
		}
		note := fmt.Sprintf("mean of %s; band: 95%% bootstrap", plural(len(r.Seeds)*len(r.Folds), "run"))
		title := "Macro-average ROC, " + strings.Join(names, " vs ")
		if len(names) > 3 {
			title = fmt.Sprintf("Macro-average ROC of %d variants", len(names))
		}
		if err := metrics.WriteROCBandsPNG(filepath.Join(dir, FileROC), r.Bands, title, note); err != nil {
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

// plural is "1 run", "2 runs".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
