package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

// Config files: one YAML (.yaml/.yml) or TOML (.toml) file whose keys are
// the command's flag names (underscores may stand for dashes) and whose
// values are what the flag takes; a list is a repeatable flag (input) or a
// comma-separated one (stage, ppk). Flags on the command line win.

// applyConfigFile sets every flag the file names that the command line did
// not set. Unknown keys are an error naming the file.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	m := map[string]any{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		if _, err := toml.Decode(string(b), &m); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	case ".yaml", ".yml", ".json":
		if err := yaml.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	default:
		return fmt.Errorf("config %s: unknown format (want .yaml, .yml or .toml)", path)
	}
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config %s: unknown setting %q (settings are the flags of `pipeline %s -h`)", path, k, fs.Name())
		}
		if onCLI[name] {
			continue
		}
		vals := []string{}
		switch v := m[k].(type) {
		case []any:
			for _, x := range v {
				vals = append(vals, fmt.Sprint(x))
			}
			if _, repeatable := f.Value.(*stringList); !repeatable {
				vals = []string{strings.Join(vals, ",")}
			}
		case nil:
			continue
		default:
			vals = append(vals, fmt.Sprint(v))
		}
		for _, v := range vals {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

// writeEffectiveConfig writes every flag's value (after the command line and
// the config file) as YAML, atomically: the settings a run used, next to its
// outputs, loadable again with --config.
func writeEffectiveConfig(fs *flag.FlagSet, path string) error {
	m := map[string]any{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || isHidden(fs, f.Name) {
			return
		}
		if l, ok := f.Value.(*stringList); ok {
			m[f.Name] = []string(*l)
			return
		}
		m[f.Name] = f.Value.String()
	})
	var buf bytes.Buffer
	buf.WriteString("# effective settings of `pipeline " + fs.Name() + "` (flags > --config file > defaults)\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return atomicfile.WriteFileAtomic(path, buf.Bytes(), 0o644)
}
