package pipeline

import (
	"context"
	"sort"

	"github.com/her2wsi/her2wsi/internal/cases"
)

// PrepareCases takes the slides of a case set that are among inputs
// through the runner r (tile, embed, anchors as r's stages say): what is up
// to date is skipped, as in `run`. It returns the run's report and the
// case slide ids that no input provides (they may have been prepared
// before, or imported; training reports them if their features are
// missing).
func PrepareCases(ctx context.Context, r *Runner, cs []cases.Case, inputs []Input) (RunReport, []string, error) {
	need := map[string]bool{}
	for _, c := range cs {
		need[c.HE] = true
		if c.IHC != "" {
			need[c.IHC] = true
		}
	}
	var take []Input
	for _, in := range inputs {
		if need[in.ID] {
			take = append(take, in)
			delete(need, in.ID)
		}
	}
	missing := make([]string, 0, len(need))
	for id := range need {
		missing = append(missing, id)
	}
	sort.Strings(missing)
	if len(take) == 0 {
		return RunReport{}, missing, nil
	}
	rep, err := r.Run(ctx, take, RunOptions{})
	return rep, missing, err
}
