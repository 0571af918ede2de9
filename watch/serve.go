package watch

import (
	"encoding/json"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/pipeline"
)

// WorkSnapshot is the status page's snapshot for a work folder served
// without a watcher (pipeline serve): the slides the watcher journalled in
// WORK/watch/, and every other slide with a report (slides/<id>/report.html),
// read afresh on each call. Nothing is queued or in progress.
func WorkSnapshot(work pipeline.Work) func() Status {
	started := time.Now()
	return func() Status {
		s := Status{Work: work.Dir, Started: started, LastScan: time.Now(),
			Queue: []QueuedSlide{}, Done: []FinishedSlide{}, Failed: []FinishedSlide{}}
		seen := map[string]bool{}
		entries, _ := os.ReadDir(JournalDir(work))
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
				continue
			}
			b, err := os.ReadFile(JournalPath(work, strings.TrimSuffix(name, ".json")))
			var j Journal
			if err != nil || json.Unmarshal(b, &j) != nil || j.ID == "" {
				continue
			}
			f := FinishedSlide{Name: j.Slide, ID: j.ID, Finished: j.Finished, Prediction: j.Prediction, Reason: j.Reason, MovedTo: j.MovedTo}
			switch j.Status {
			case JournalDone:
				f.Report = j.Report
				s.Done = append(s.Done, f)
				seen[j.ID] = true
			case JournalFailed:
				s.Failed = append(s.Failed, f)
			}
		}
		slides, _ := os.ReadDir(path.Join(work.Dir, "slides"))
		for _, e := range slides {
			id := e.Name()
			if !e.IsDir() || strings.HasPrefix(id, ".") || seen[id] {
				continue
			}
			fi, err := os.Stat(work.ReportHTML(id))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			s.Done = append(s.Done, FinishedSlide{Name: id, ID: id, Finished: fi.ModTime(), Report: path.Join("slides", id, "report.html")})
		}
		for _, l := range []*[]FinishedSlide{&s.Done, &s.Failed} {
			sort.SliceStable(*l, func(a, b int) bool { return (*l)[a].Finished.After((*l)[b].Finished) })
			if len(*l) > maxListed {
				*l = (*l)[:maxListed]
			}
		}
		return s
	}
}
