// Package deploy_test runs the shipped cluster files: the Slurm array job
// on a real one-node Slurm (TestSlurmArrayJob, make test-slurm) and the
// Kubernetes Job's rules, parsed (TestKubernetesIndexedJob).
package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/slidelock"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/synth"
)

// slurmEnv turns TestSlurmArrayJob on. It is an environment variable, not
// a build tag, so that `make test` still compiles and vets the test; it is
// off by default because the test installs packages and starts daemons as
// root (deploy/slurm/local-cluster.sh).
const slurmEnv = "HER2WSI_SLURM"

// The test's own cluster: a folder and ports apart from local-cluster.sh's
// defaults, so that a cluster a user brought up is left alone. The Makefile
// runs `down` on this folder again after the test, in case the test
// process itself was killed.
const (
	testClusterDir  = "/tmp/her2wsi-slurm-test"
	testClusterPort = "16917"
)

type cluster struct {
	script string
	env    []string
}

func newCluster(root string) *cluster {
	return &cluster{
		script: filepath.Join(root, "deploy", "slurm", "local-cluster.sh"),
		env: append(os.Environ(), "HER2WSI_SLURM_DIR="+testClusterDir, "HER2WSI_SLURM_PORT="+testClusterPort,
			"SLURM_CONF="+filepath.Join(testClusterDir, "slurm.conf")),
	}
}

// sh runs a command with the cluster's environment and returns its output
// (stdout and stderr) and exit code.
func (c *cluster) sh(dir, name string, args ...string) (string, int) {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = c.env, dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	return string(out) + err.Error(), -1
}

// must runs a command that must succeed and returns its output.
func (c *cluster) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, code := c.sh("", name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// job is what the test passes to the shipped pipeline.sbatch: the
// variables, the folder sbatch runs in (dir; a new temporary one when
// empty) and the absolute log folder.
type job struct {
	root, input, work, encoder, model, pipeline string
	dir, logs                                   string
}

// submit runs sbatch on deploy/slurm/pipeline.sbatch, unchanged, over the
// given array tasks with SHARDS=3; with wait it waits for the tasks to end
// (sbatch --wait) and returns sbatch's exit code (the tasks' highest). The
// shipped script asks 8 CPUs and 32 GB per task: this node is smaller, so
// the command line asks less, as a user of a small node would.
func (c *cluster) submit(t *testing.T, j job, array string, wait bool, env ...string) (jobID string, code int) {
	t.Helper()
	export := strings.Join(append([]string{"ALL", "SHARDS=3", "INPUT=" + j.input, "WORK=" + j.work,
		"ENCODER=" + j.encoder, "MODEL=" + j.model, "PIPELINE=" + j.pipeline}, env...), ",")
	args := []string{"--parsable", "--array=" + array, "--cpus-per-task=1", "--mem=1G", "--time=15",
		"--output=" + filepath.Join(j.logs, "%A_%a.out"), "--export=" + export}
	if wait {
		args = append(args, "--wait")
	}
	args = append(args, filepath.Join(j.root, "deploy", "slurm", "pipeline.sbatch"))
	start := time.Now()
	dir := j.dir
	if dir == "" {
		dir = t.TempDir()
	}
	out, code := c.sh(dir, "sbatch", args...)
	m := regexp.MustCompile(`(?m)^(\d+)(;\S+)?$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sbatch %s: exit %d, no job id:\n%s", strings.Join(args, " "), code, out)
	}
	if wait {
		t.Logf("sbatch --wait --array=%s: job %s, exit %d after %s", array, m[1], code, time.Since(start).Round(100*time.Millisecond))
	}
	return m[1], code
}

// states waits until sacct lists every one of tasks of job in a final
// state and returns task → "STATE EXITCODE" (e.g. "COMPLETED 0:0").
// Slurm sends job records to slurmdbd asynchronously, hence the wait.
func (c *cluster) states(t *testing.T, jobID string, tasks ...int) map[int]string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, code := c.sh("", "sacct", "-n", "-P", "-X", "-j", jobID, "--format=JobID,State,ExitCode")
		got := map[int]string{}
		final := code == 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(l, "|")
			if code != 0 || len(f) != 3 {
				continue
			}
			var task int
			if _, err := fmt.Sscanf(f[0], jobID+"_%d", &task); err != nil {
				continue
			}
			got[task] = strings.Fields(f[1])[0] + " " + f[2]
			switch strings.Fields(f[1])[0] {
			case "PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING":
				final = false
			}
		}
		for _, task := range tasks {
			if _, ok := got[task]; !ok {
				final = false
			}
		}
		if final {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("sacct -j %s: not every task of %v in a final state after 90 s:\n%s", jobID, tasks, out)
		}
		time.Sleep(time.Second)
	}
}

// gone waits until no task of job is in squeue (not even COMPLETING): its
// processes have ended. sacct reports CANCELLED as soon as scancel is
// accepted, while the task may still be stopping.
func (c *cluster) gone(t *testing.T, jobID string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, code := c.sh("", "squeue", "-h", "-j", jobID, "-o", "%i %T")
		if code != 0 || strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still in squeue 2 min after scancel:\n%s", jobID, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// taskLog returns task's log, WORK/logs/JOB_TASK.out.
func taskLog(t *testing.T, j job, jobID string, task int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(j.logs, fmt.Sprintf("%s_%d.out", jobID, task)))
	if err != nil {
		t.Fatalf("task %d's log: %v", task, err)
	}
	if m := regexp.MustCompile(`\d+ slides in \S+`).Find(b); m != nil {
		t.Logf("job %s_%d: %s", jobID, task, m)
	}
	return string(b)
}

// wantLog checks that a task's log has every line part in want.
func wantLog(t *testing.T, log string, task int, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("task %d's log lacks %q:\n%s", task, w, log)
		}
	}
}

// stamp is a file's size and modification time ("" when it does not exist).
func stamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d@%s", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
}

// outputs stamps every slide's stage outputs.
func outputs(work string, ids []string) map[string]string {
	m := map[string]string{}
	for _, id := range ids {
		d := filepath.Join(work, "slides", id)
		for _, f := range []string{"coords.h5", filepath.Join("features", "tiny-clip.h5"), "anchors.h5"} {
			m[id+"/"+f] = stamp(filepath.Join(d, f))
		}
	}
	return m
}

// stageDone says whether state.json records stage as done for the slide.
func stageDone(work, id, stage string) bool {
	b, err := os.ReadFile(filepath.Join(work, "slides", id, "state.json"))
	if err != nil {
		return false
	}
	var st struct {
		Stages map[string]struct {
			Status string `json:"status"`
		} `json:"stages"`
	}
	return json.Unmarshal(b, &st) == nil && st.Stages[stage].Status == "done"
}

// wantPredictions checks predictions.csv has exactly one row per slide of
// ids and no other.
func wantPredictions(t *testing.T, work string, ids []string) {
	t.Helper()
	rows := fixture.PredictionRows(t, filepath.Join(work, "predictions.csv"))
	for _, id := range ids {
		if rows[id] != 1 {
			t.Errorf("predictions.csv: slide %s has %d rows, want 1", id, rows[id])
		}
	}
	if len(rows) != len(ids) {
		t.Errorf("predictions.csv: %d slides %v, want %d %v", len(rows), rows, len(ids), ids)
	}
}

// shardSlides picks per slide ids for each of n shards (the first ids
// prefix-00, prefix-01, … that fall in each), so every task has work.
func shardSlides(prefix string, n, per int) [][]string {
	out := make([][]string, n)
	for i, full := 0, 0; full < n; i++ {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		s := slidelock.ShardOf(id, n)
		if len(out[s]) < per {
			out[s] = append(out[s], id)
			if len(out[s]) == per {
				full++
			}
		}
	}
	return out
}

func writeSlide(t *testing.T, path string, w, h int, seed uint64) {
	t.Helper()
	o := synth.SlideOptions{Width: w, Height: h, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Seed: seed,
		Tissue: synth.Layout(w, h, 2)}
	if err := synth.WriteSlide(path, o); err != nil {
		t.Fatal(err)
	}
}

// waitTiled waits until state.json records slide id as tiled (by task of
// job, whose log is shown if that takes over 3 min).
func waitTiled(t *testing.T, j job, jobID string, task int, id string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !stageDone(j.work, id, "tile") {
		if time.Now().After(deadline) {
			t.Fatalf("slide %s not tiled 3 min after submitting; task log:\n%s", id, taskLog(t, j, jobID, task))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlurmArrayJob brings up a one-node Slurm (local-cluster.sh), submits
// deploy/slurm/pipeline.sbatch unchanged as a 3-task array over generated
// slides with the tiny test encoder and an untrained tiny model, and checks
// what a user of the array job relies on: every slide predicted exactly
// once, one log per task, sacct's states; a resubmitted task (relative
// paths) redoes only what was deleted; a task cancelled mid-slide (scancel)
// leaves no lock and no row, and its rerun finishes that slide without
// redoing the rest; a task requeued mid-slide does the same in its second
// attempt, appending to its log; a misconfigured task fails with exit code
// 2. The cluster is taken down at the end, also when the test fails.
func TestSlurmArrayJob(t *testing.T) {
	if os.Getenv(slurmEnv) != "1" {
		t.Skipf("brings up a one-node Slurm as root (installing it when missing): make test-slurm, or %s=1", slurmEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the local Slurm runs as root: run as root")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(os.Getenv("HER2WSI_ORT_LIB")); err != nil {
		t.Fatalf("HER2WSI_ORT_LIB (the ONNX Runtime library the tasks load): %v", err)
	}
	tmp := t.TempDir()
	j := job{root: root, input: filepath.Join(tmp, "slides"), work: filepath.Join(tmp, "work"),
		encoder: filepath.Join(root, "features", "testdata", "encoders", "tiny-clip.onnx"),
		model:   fixture.TinyModelDir(t, nil), pipeline: os.Getenv("PIPELINE"), logs: filepath.Join(tmp, "work", "logs")}
	if j.pipeline == "" {
		j.pipeline = filepath.Join(tmp, "pipeline")
		t.Logf("building %s (set PIPELINE to use a built one)", j.pipeline)
		build := exec.Command("go", "build", "-o", j.pipeline, "./cmd/pipeline")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	} else if j.pipeline, err = filepath.Abs(j.pipeline); err != nil {
		t.Fatal(err)
	}

	// Two slides per shard, 4096×4096 at 40× (44 patches at 20×).
	shards := shardSlides("slide", 3, 2)
	if err := os.MkdirAll(j.input, 0o755); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for s, sh := range shards {
		for k, id := range sh {
			writeSlide(t, filepath.Join(j.input, id+".svs"), 4096, 4096, uint64(10*s+k+1))
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if err := os.MkdirAll(j.logs, 0o755); err != nil {
		t.Fatal(err)
	}

	c := newCluster(root)
	c.sh("", c.script, "down") // what a killed earlier run left
	t.Cleanup(func() {
		out, code := c.sh("", c.script, "down")
		if code != 0 {
			t.Errorf("local-cluster.sh down: exit %d\n%s", code, out)
		}
		if _, err := os.Stat(testClusterDir); err == nil {
			t.Errorf("local-cluster.sh down left %s", testClusterDir)
		}
		if out, code := c.sh("", c.script, "status"); code == 0 {
			t.Errorf("local-cluster.sh status after down: exit 0\n%s", out)
		}
	})
	start := time.Now()
	c.must(t, c.script, "up")
	t.Logf("cluster up in %s", time.Since(start).Round(time.Second))
	if out := c.must(t, c.script, "up"); !strings.Contains(out, "already up") {
		t.Errorf("a second up did not find the cluster up:\n%s", out)
	}
	c.must(t, c.script, "status")

	// 1. The whole array.
	jobID, code := c.submit(t, j, "0-2", true)
	for task := range 3 {
		l := taskLog(t, j, jobID, task)
		wantLog(t, l, task, fmt.Sprintf("her2wsi: shard %d/3 on ", task), fmt.Sprintf("shard %d/3: 2 of 6 slides", task),
			"tile: 2 done, 0 skipped, 0 failed", "embed: 2 done, 0 skipped, 0 failed", "predict: 2 done, 0 skipped, 0 failed")
		for _, id := range shards[task] {
			wantLog(t, l, task, "slide="+id)
		}
	}
	if code != 0 {
		t.Fatalf("sbatch --wait --array=0-2: exit %d", code)
	}
	for task, st := range c.states(t, jobID, 0, 1, 2) {
		if st != "COMPLETED 0:0" {
			t.Errorf("sacct: task %d %s, want COMPLETED 0:0", task, st)
		}
	}
	wantPredictions(t, j.work, ids)
	if t.Failed() {
		t.FailNow()
	}

	// 2. One slide's features deleted, its task resubmitted (with paths
	// relative to the folder sbatch runs in): only that slide's embedding
	// is redone.
	redo := shards[1][0]
	feat := filepath.Join(j.work, "slides", redo, "features", "tiny-clip.h5")
	if err := os.Remove(feat); err != nil {
		t.Fatal(err)
	}
	before := outputs(j.work, ids)
	time.Sleep(10 * time.Millisecond) // a rewritten file's time differs
	rel := j
	rel.dir, rel.input, rel.work = tmp, "slides", "work"
	jobID, code = c.submit(t, rel, "1", true)
	l := taskLog(t, j, jobID, 1)
	wantLog(t, l, 1, "shard 1/3: 2 of 6 slides", "tile: 0 done, 2 skipped, 0 failed", "embed: 1 done, 1 skipped, 0 failed",
		"anchors: 0 done, 2 skipped, 0 failed", "predict: 2 done, 0 skipped, 0 failed")
	if code != 0 {
		t.Fatalf("sbatch --array=1: exit %d\n%s", code, l)
	}
	after := outputs(j.work, ids)
	for f, b := range before {
		switch {
		case f == redo+"/features/tiny-clip.h5":
			if after[f] == "" {
				t.Errorf("%s not made again", f)
			}
		case after[f] != b:
			t.Errorf("%s redone (%s, was %s): only %s's features were missing", f, after[f], b, redo)
		}
	}
	if st := c.states(t, jobID, 1)[1]; st != "COMPLETED 0:0" {
		t.Errorf("sacct: resubmitted task %s", st)
	}
	wantPredictions(t, j.work, ids)

	// 3. A bigger slide added to shard 2's share; its task is cancelled
	// while that slide is between tiling and embedding, then run again.
	big := shardSlides("big", 3, 1)[2][0]
	writeSlide(t, filepath.Join(j.input, big+".svs"), 16384, 12288, 99)
	jobID, _ = c.submit(t, j, "2", false)
	bigDir := filepath.Join(j.work, "slides", big)
	bigFeat := filepath.Join(bigDir, "features", "tiny-clip.h5")
	waitTiled(t, j, jobID, 2, big)
	c.must(t, "scancel", jobID+"_2")
	cancelled := time.Now()
	c.gone(t, jobID)
	t.Logf("task stopped %s after scancel", time.Since(cancelled).Round(100*time.Millisecond))
	if st := c.states(t, jobID, 2)[2]; !strings.HasPrefix(st, "CANCELLED") {
		t.Errorf("sacct: cancelled task %s, want CANCELLED", st)
	}
	l = taskLog(t, j, jobID, 2)
	if fixture.Exists(bigFeat) || stageDone(j.work, big, "embed") {
		t.Fatalf("slide %s was embedded before scancel reached its task: the test needs a bigger slide\n%s", big, l)
	}
	wantLog(t, l, 2, "shard 2/3: 3 of 7 slides", "interrupted")
	if fixture.Exists(filepath.Join(bigDir, ".lock")) {
		t.Errorf("the cancelled task left %s's lock behind", big)
	}
	wantPredictions(t, j.work, ids)

	jobID, code = c.submit(t, j, "2", true)
	l = taskLog(t, j, jobID, 2)
	wantLog(t, l, 2, "tile: 0 done, 3 skipped, 0 failed", "embed: 1 done, 2 skipped, 0 failed", "predict: 3 done, 0 skipped, 0 failed")
	if code != 0 {
		t.Fatalf("rerun of the cancelled task: exit %d\n%s", code, l)
	}
	if st := c.states(t, jobID, 2)[2]; st != "COMPLETED 0:0" {
		t.Errorf("sacct: rerun task %s", st)
	}
	wantPredictions(t, j.work, append(ids, big))
	var deadline time.Time

	// 4. The same with a requeue (what a node failure or preemption does
	// to a task submitted with the script's --requeue): the task is killed
	// mid-slide and started again; its log keeps both attempts.
	bigq := shardSlides("requeue", 3, 1)[0][0]
	writeSlide(t, filepath.Join(j.input, bigq+".svs"), 16384, 12288, 98)
	jobID, _ = c.submit(t, j, "0", false)
	waitTiled(t, j, jobID, 0, bigq)
	c.must(t, "scontrol", "requeue", jobID+"_0")
	// A requeued batch job waits (BeginTime) before it may start again;
	// an admin's `scontrol update StartTime=now` skips that, once the
	// first attempt has ended.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		out, _ := c.sh("", "squeue", "-h", "-j", jobID, "-o", "%T")
		if strings.TrimSpace(out) == "PENDING" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requeued task not pending after 2 min: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fixture.Exists(filepath.Join(j.work, "slides", bigq, "features", "tiny-clip.h5")) {
		t.Fatalf("slide %s was embedded before the requeue reached its task: the test needs a bigger slide", bigq)
	}
	c.must(t, "scontrol", "update", "JobId="+jobID+"_0", "StartTime=now")
	c.gone(t, jobID)
	l = taskLog(t, j, jobID, 0)
	t.Logf("the requeued task's log:\n%s", l)
	wantLog(t, l, 0, "attempt 1,", "DUE TO JOB REQUEUE", "interrupted", "attempt 2,",
		"tile: 0 done, 3 skipped, 0 failed", "embed: 1 done, 2 skipped, 0 failed", "predict: 3 done, 0 skipped, 0 failed")
	out := c.must(t, "sacct", "-n", "-P", "-X", "--duplicates", "-j", jobID, "--format=JobID,State,ExitCode")
	// slurmdbd names the second attempt of a one-task array either
	// JOB_0 or plain JOB (seen on a fresh clone: "7_0|REQUEUED", "7|COMPLETED").
	got := strings.Fields(strings.ReplaceAll(out, "|", " "))
	for i := 0; i+2 < len(got); i += 3 {
		if got[i] == jobID {
			got[i] = jobID + "_0"
		}
	}
	if !slices.Equal(got, []string{jobID + "_0", "REQUEUED", "0:0", jobID + "_0", "COMPLETED", "0:0"}) {
		t.Errorf("sacct --duplicates: %q, want the task REQUEUED then COMPLETED", out)
	}
	wantPredictions(t, j.work, append(ids, big, bigq))

	// 5. A misconfigured submission fails with exit code 2 and says why.
	jobID, code = c.submit(t, j, "0", true, "PIPELINE="+filepath.Join(tmp, "no-such-pipeline"))
	if code != 2 {
		t.Errorf("sbatch with a missing PIPELINE: exit %d, want 2", code)
	}
	if st := c.states(t, jobID, 0)[0]; st != "FAILED 2:0" {
		t.Errorf("sacct: misconfigured task %s, want FAILED 2:0", st)
	}
	wantLog(t, taskLog(t, j, jobID, 0), 0, "her2wsi: PIPELINE="+filepath.Join(tmp, "no-such-pipeline")+" is not an executable file")
}
