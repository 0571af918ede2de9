package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of a Kubernetes manifest the test reads (unknown fields are
// ignored by the decoder; what matters is checked below).
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

type pvcSpec struct {
	AccessModes []string `yaml:"accessModes"`
}

type jobSpec struct {
	CompletionMode       string `yaml:"completionMode"`
	Completions          *int   `yaml:"completions"`
	Parallelism          *int   `yaml:"parallelism"`
	BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
	MaxFailedIndexes     *int   `yaml:"maxFailedIndexes"`
	Template             struct {
		Spec struct {
			RestartPolicy   string `yaml:"restartPolicy"`
			SecurityContext struct {
				RunAsUser *int `yaml:"runAsUser"`
				FSGroup   *int `yaml:"fsGroup"`
			} `yaml:"securityContext"`
			Containers []struct {
				Name    string   `yaml:"name"`
				Image   string   `yaml:"image"`
				Command []string `yaml:"command"`
				Args    []string `yaml:"args"`
				Env     []struct {
					Name      string `yaml:"name"`
					Value     string `yaml:"value"`
					ValueFrom *struct {
						FieldRef *struct {
							FieldPath string `yaml:"fieldPath"`
						} `yaml:"fieldRef"`
					} `yaml:"valueFrom"`
				} `yaml:"env"`
				Resources struct {
					Requests map[string]string `yaml:"requests"`
				} `yaml:"resources"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name                  string `yaml:"name"`
				PersistentVolumeClaim *struct {
					ClaimName string `yaml:"claimName"`
				} `yaml:"persistentVolumeClaim"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

// intOr prints an optional number ("unset" when absent).
func intOr(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

// readManifest decodes every document of a multi-document YAML file.
func readManifest(b []byte) ([]k8sObject, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
}

// dockerfileUser returns the Dockerfile's runtime ENTRYPOINT (JSON form)
// and the uid of the user it runs as (useradd --uid N).
func dockerfileUser(dockerfile []byte) (entrypoint []string, uid int, err error) {
	uid = -1
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	uidRe := regexp.MustCompile(`useradd .*--uid (\d+)`)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if m := uidRe.FindStringSubmatch(l); m != nil {
			uid, _ = strconv.Atoi(m[1])
		}
		if rest, ok := strings.CutPrefix(l, "ENTRYPOINT "); ok {
			if err := yaml.Unmarshal([]byte(rest), &entrypoint); err != nil { // JSON is YAML
				return nil, 0, fmt.Errorf("Dockerfile ENTRYPOINT %s: %w", rest, err)
			}
		}
	}
	return entrypoint, uid, nil
}

// TestKubernetesIndexedJob checks deploy/kubernetes/job.yaml against the
// Indexed Job rules the deployment relies on (Kubernetes itself cannot run
// here): one pod per shard with the pod's completion index as the shard,
// the shared volume under every path the pipeline reads or writes, and the
// image's entrypoint and user.
func jobProblems(manifest, dockerfile []byte) (problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	objs, err := readManifest(manifest)
	if err != nil {
		return []string{err.Error()}
	}
	var pvcs = map[string]pvcSpec{}
	var job *jobSpec
	for _, o := range objs {
		switch {
		case o.APIVersion == "v1" && o.Kind == "PersistentVolumeClaim":
			var s pvcSpec
			if err := o.Spec.Decode(&s); err != nil {
				return append(problems, err.Error())
			}
			pvcs[o.Metadata.Name] = s
		case o.APIVersion == "batch/v1" && o.Kind == "Job":
			if job != nil {
				return append(problems, "more than one Job")
			}
			job = new(jobSpec)
			if err := o.Spec.Decode(job); err != nil {
				return append(problems, err.Error())
			}
		default:
			bad("job.yaml: unexpected %s %s", o.APIVersion, o.Kind)
		}
	}
	if job == nil {
		return append(problems, "no batch/v1 Job")
	}

	// One pod per shard, all at once.
	if job.CompletionMode != "Indexed" {
		bad("completionMode %q, want Indexed (JOB_COMPLETION_INDEX is set only for Indexed Jobs)", job.CompletionMode)
	}
	if job.Completions == nil || *job.Completions < 1 {
		return append(problems, "completions: want the number of shards")
	}
	shards := *job.Completions
	if job.Parallelism == nil || *job.Parallelism != shards {
		bad("parallelism %s, want completions (%d): one pod per shard at once", intOr(job.Parallelism), shards)
	}
	// backoffLimitPerIndex needs restartPolicy Never (a retry is a new pod
	// with the same index) and maxFailedIndexes ≤ completions.
	ps := job.Template.Spec
	if job.BackoffLimitPerIndex != nil {
		if ps.RestartPolicy != "Never" {
			bad("restartPolicy %q with backoffLimitPerIndex: Kubernetes requires Never", ps.RestartPolicy)
		}
		if job.MaxFailedIndexes != nil && *job.MaxFailedIndexes > shards {
			bad("maxFailedIndexes %d > completions %d", *job.MaxFailedIndexes, shards)
		}
	} else if ps.RestartPolicy != "Never" && ps.RestartPolicy != "OnFailure" {
		bad("restartPolicy %q: a Job's pods need Never or OnFailure", ps.RestartPolicy)
	}
	if len(ps.Containers) != 1 {
		return append(problems, fmt.Sprintf("%d containers, want 1", len(ps.Containers)))
	}
	c := ps.Containers[0]

	// The environment: the completion index and SHARDS = completions.
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		default:
			env[e.Name] = e.Value
		}
	}
	const indexRef = "fieldRef:metadata.annotations['batch.kubernetes.io/job-completion-index']"
	if env["JOB_COMPLETION_INDEX"] != indexRef {
		bad("JOB_COMPLETION_INDEX = %q, want %s", env["JOB_COMPLETION_INDEX"], indexRef)
	}
	if env["SHARDS"] != strconv.Itoa(shards) {
		bad("SHARDS = %q, want completions (%d)", env["SHARDS"], shards)
	}

	// The command line: the image's entrypoint runs `pipeline run` over
	// shard $(JOB_COMPLETION_INDEX)/$(SHARDS), and every $(VAR) is one the
	// container declares (Kubernetes leaves an undeclared one as it is).
	entry, uid, err := dockerfileUser(dockerfile)
	if err != nil {
		return append(problems, err.Error())
	}
	if len(c.Command) > 0 {
		bad("command %q replaces the image's ENTRYPOINT %q: give args only", c.Command, entry)
	}
	if len(entry) != 1 || filepath.Base(entry[0]) != "pipeline" {
		bad("Dockerfile ENTRYPOINT %q: the args assume [\"pipeline\"]", entry)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		return append(problems, fmt.Sprintf("args %q: want run first", c.Args))
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		name, val, ok := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "--") || !ok {
			bad("arg %q: want --flag=value (one list item each)", a)
			continue
		}
		flags[strings.TrimPrefix(name, "--")] = val
		for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				bad("arg %q uses $(%s), which the container does not declare", a, m[1])
			}
		}
	}
	if got := flags["shard"]; got != "$(JOB_COMPLETION_INDEX)/$(SHARDS)" {
		bad("--shard=%s, want $(JOB_COMPLETION_INDEX)/$(SHARDS)", got)
	}
	if flags["stage"] != "all" {
		bad("--stage=%s, want all", flags["stage"])
	}
	if cpu := c.Resources.Requests["cpu"]; flags["threads"] != cpu {
		bad("--threads=%s, want the CPU request %s", flags["threads"], cpu)
	}

	// The shared volume: a ReadWriteMany claim mounted where every path the
	// pipeline uses lies.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var mountPath string
	for _, v := range ps.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pvc, ok := pvcs[v.PersistentVolumeClaim.ClaimName]
		if !ok {
			bad("volume %s: claim %s is not in job.yaml", v.Name, v.PersistentVolumeClaim.ClaimName)
			continue
		}
		if len(pvc.AccessModes) != 1 || pvc.AccessModes[0] != "ReadWriteMany" {
			bad("claim %s: accessModes %q, want [ReadWriteMany] (every pod writes the work folder)", v.PersistentVolumeClaim.ClaimName, pvc.AccessModes)
		}
		if mountPath = mounts[v.Name]; mountPath == "" {
			bad("volume %s is not mounted", v.Name)
		}
	}
	if mountPath == "" {
		return append(problems, "no PersistentVolumeClaim volume mounted")
	}
	for _, p := range []string{flags["input"], flags["work"], flags["encoder"], flags["model"], env["HER2WSI_ORT_LIB"], env["HER2WSI_MODELS"]} {
		if !strings.HasPrefix(p, strings.TrimSuffix(mountPath, "/")+"/") {
			bad("path %q is not on the shared volume (%s)", p, mountPath)
		}
	}
	sc := ps.SecurityContext
	if sc.RunAsUser == nil || *sc.RunAsUser != uid || sc.FSGroup == nil || *sc.FSGroup != uid {
		bad("securityContext runAsUser %s, fsGroup %s: want the image's uid %d for both (the volume must be writable)", intOr(sc.RunAsUser), intOr(sc.FSGroup), uid)
	}
	return problems
}

// TestKubernetesIndexedJob: the shipped job.yaml keeps the rules, and each
// rule is checked (a manifest that breaks it is reported).
func TestKubernetesIndexedJob(t *testing.T) {
	manifest, err := os.ReadFile(filepath.Join("kubernetes", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range jobProblems(manifest, dockerfile) {
		t.Errorf("deploy/kubernetes/job.yaml: %s", p)
	}
	broken := []struct {
		name, old, new, want string
	}{
		{"not indexed", "completionMode: Indexed", "completionMode: NonIndexed", "completionMode"},
		{"fewer completions than shards", "completions: 16", "completions: 8", "SHARDS"},
		{"parallelism below completions", "parallelism: 16", "parallelism: 4", "parallelism"},
		{"shard from another variable", "--shard=$(JOB_COMPLETION_INDEX)/$(SHARDS)", "--shard=$(INDEX)/$(SHARDS)", "$(INDEX)"},
		{"no index variable", "batch.kubernetes.io/job-completion-index", "batch.kubernetes.io/job-index", "JOB_COMPLETION_INDEX"},
		{"entrypoint replaced", "          args:\n", "          command: [pipeline]\n          args:\n", "ENTRYPOINT"},
		{"restarts in place", "restartPolicy: Never", "restartPolicy: OnFailure", "restartPolicy"},
		{"volume read-write-once", "accessModes: [ReadWriteMany]", "accessModes: [ReadWriteOnce]", "ReadWriteMany"},
		{"work off the volume", "--work=/data/work", "--work=/scratch/work", "/scratch/work"},
		{"another claim", "claimName: her2wsi-data", "claimName: other", "claim other"},
		{"threads above the request", "--threads=8", "--threads=16", "--threads"},
		{"user not the image's", "runAsUser: 10001", "runAsUser: 0", "uid 10001"},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			m := strings.Replace(string(manifest), b.old, b.new, 1)
			if m == string(manifest) {
				t.Fatalf("job.yaml has no %q to change", b.old)
			}
			ps := jobProblems([]byte(m), dockerfile)
			if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, b.want) }) {
				t.Errorf("no problem mentioning %q reported: %q", b.want, ps)
			}
		})
	}
}
