package cases

import (
	"fmt"
	"path/filepath"
	"strings"
)

// WorkChecker says whether a slide is ready in the work folder (tiled,
// embedded with the chosen encoder, anchored): nil, or why not. The pipeline
// supplies it; this package only calls it.
type WorkChecker interface {
	Check(slideID string) error
}

// slideExts are slide file extensions; a slide id that ends in one was most
// likely written as a file name, and Check says so.
var slideExts = []string{".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".jpg", ".jpeg", ".png"}

// Check asks the work folder about every slide of every case: one problem per
// slide that is not ready, on the case's line, naming the case, the role (H&E
// or IHC), the slide and the checker's error. name labels the problems. Give
// it the cases of a file without problems (Parse reports those first).
func Check(cs []Case, name string, w WorkChecker) []Problem {
	ps := &problems{file: name}
	for i, c := range cs {
		for _, s := range []struct{ id, role string }{{c.HE, "H&E"}, {c.IHC, "IHC"}} {
			if s.id == "" {
				continue
			}
			err := w.Check(s.id)
			if err == nil {
				continue
			}
			hint := ""
			if ext := filepath.Ext(s.id); ext != "" && containsFold(slideExts, ext) {
				hint = fmt.Sprintf(" (slide ids have no extension: %q?)", strings.TrimSuffix(s.id, ext))
			}
			ps.add(lineOf(cs, i), "%s%s slide %q: %v%s", caseRef(c), s.role, s.id, err, hint)
		}
	}
	return ps.list
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
