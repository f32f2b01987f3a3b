package workerruntime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// InputMode is how inputs are written to a worker's stdin.
type InputMode string

// The input modes.
const (
	InputText  InputMode = "text"
	InputJSONL InputMode = "jsonl"
)

// DefaultStopGrace is the stop_grace of a profile that names none.
const DefaultStopGrace = 5 * time.Second

// maxStopGrace bounds stop_grace so a graceful stop cannot hang for ever.
const maxStopGrace = 10 * time.Minute

// Profile is one entry of the operator's profiles file: the only place a
// command is named.
type Profile struct {
	Name        string
	Label       string
	Description string
	Command     []string
	Env         map[string]string
	Input       InputMode
	StopGrace   time.Duration // default 5s
}

// Profiles is the parsed profiles file.
type Profiles struct {
	Default string
	List    []Profile // file order
}

var (
	profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,80}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

type rawProfiles struct {
	Default  string       `yaml:"default"`
	Profiles []rawProfile `yaml:"profiles"`
}

type rawProfile struct {
	Name        string            `yaml:"name"`
	Label       string            `yaml:"label"`
	Description string            `yaml:"description"`
	Command     []string          `yaml:"command"`
	Env         map[string]string `yaml:"env"`
	Input       string            `yaml:"input"`
	StopGrace   string            `yaml:"stop_grace"`
}

// ProfileError is a validation error of the profiles file: it names the
// profile (or its position when it has no usable name) and the field.
type ProfileError struct {
	Profile string // "" for a file-level field
	Field   string
	Reason  string
}

// Error returns "profile "NAME": field "FIELD": REASON".
func (e *ProfileError) Error() string {
	if e.Profile == "" {
		return fmt.Sprintf("field %q: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("profile %s: field %q: %s", e.Profile, e.Field, e.Reason)
}

// LoadProfiles reads and validates the YAML profiles file (unknown fields
// rejected; names in the id alphabet 1-80 and unique; default names one;
// command non-empty, an absolute path or a bare name resolved on PATH now).
// Its errors name the file, the profile and the field, never an env value.
func LoadProfiles(path string) (*Profiles, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	p, err := ParseProfiles(data)
	if err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	return p, nil
}

// ParseProfiles parses and validates a profiles file's content; see
// LoadProfiles. Errors are *ProfileError or a YAML syntax error.
func ParseProfiles(data []byte) (*Profiles, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawProfiles
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ProfileError{Field: "profiles", Reason: "the file is empty"}
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if len(raw.Profiles) == 0 {
		return nil, &ProfileError{Field: "profiles", Reason: "at least one profile is required"}
	}
	out := &Profiles{Default: raw.Default}
	seen := map[string]bool{}
	for i, rp := range raw.Profiles {
		p, err := validateProfile(i, rp)
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, &ProfileError{Profile: fmt.Sprintf("%q", p.Name), Field: "name", Reason: "duplicate name"}
		}
		seen[p.Name] = true
		out.List = append(out.List, p)
	}
	if out.Default == "" {
		return nil, &ProfileError{Field: "default", Reason: "required: the name of the profile used when a create names none"}
	}
	if !seen[out.Default] {
		return nil, &ProfileError{Field: "default", Reason: fmt.Sprintf("names no profile (%q)", out.Default)}
	}
	return out, nil
}

func validateProfile(i int, rp rawProfile) (Profile, error) {
	who := fmt.Sprintf("#%d", i+1)
	if !profileNameRE.MatchString(rp.Name) {
		return Profile{}, &ProfileError{Profile: who, Field: "name", Reason: "required: 1-80 characters of A-Z a-z 0-9 _ : -"}
	}
	who = fmt.Sprintf("%q", rp.Name)
	fail := func(field, reason string) (Profile, error) {
		return Profile{}, &ProfileError{Profile: who, Field: field, Reason: reason}
	}
	p := Profile{
		Name:        rp.Name,
		Label:       strings.TrimSpace(rp.Label),
		Description: strings.TrimSpace(rp.Description),
		Input:       InputMode(rp.Input),
		StopGrace:   DefaultStopGrace,
	}
	if p.Label == "" {
		p.Label = p.Name
	}
	if len(p.Label) > 200 {
		return fail("label", "longer than 200 bytes")
	}
	if len(p.Description) > 2000 {
		return fail("description", "longer than 2000 bytes")
	}
	switch p.Input {
	case "":
		p.Input = InputText
	case InputText, InputJSONL:
	default:
		return fail("input", `must be "text" or "jsonl"`)
	}
	if rp.StopGrace != "" {
		d, err := time.ParseDuration(rp.StopGrace)
		if err != nil || d <= 0 || d > maxStopGrace {
			return fail("stop_grace", "must be a duration such as 5s, above 0 and at most 10m")
		}
		p.StopGrace = d
	}
	if len(rp.Command) == 0 || rp.Command[0] == "" {
		return fail("command", "required: a non-empty list, the program first")
	}
	for _, a := range rp.Command {
		if strings.ContainsRune(a, 0) {
			return fail("command", "contains a NUL byte")
		}
	}
	prog := rp.Command[0]
	switch {
	case filepath.IsAbs(prog):
	case strings.ContainsRune(prog, '/'):
		return fail("command", "the program must be an absolute path or a bare name found on PATH")
	default:
		abs, err := exec.LookPath(prog)
		if err != nil || !filepath.IsAbs(abs) {
			return fail("command", fmt.Sprintf("program %q not found on PATH", prog))
		}
		prog = abs
	}
	p.Command = append([]string{prog}, rp.Command[1:]...)
	if len(rp.Env) > 0 {
		p.Env = make(map[string]string, len(rp.Env))
		for k, v := range rp.Env {
			switch {
			case !envNameRE.MatchString(k):
				return fail("env", fmt.Sprintf("invalid variable name %q", k))
			case strings.HasPrefix(k, "WORKER_"):
				return fail("env", fmt.Sprintf("variable %q: WORKER_* names are set by the runtime", k))
			case strings.ContainsRune(v, 0):
				// Never echo the value: it may be a secret.
				return fail("env", fmt.Sprintf("variable %q: the value contains a NUL byte", k))
			}
			p.Env[k] = v
		}
	}
	return p, nil
}

// Lookup returns the named profile ("" names the default) and whether it exists.
func (p *Profiles) Lookup(name string) (Profile, bool) {
	if p == nil {
		return Profile{}, false
	}
	if name == "" {
		name = p.Default
	}
	for _, pr := range p.List {
		if pr.Name == name {
			return pr, true
		}
	}
	return Profile{}, false
}
