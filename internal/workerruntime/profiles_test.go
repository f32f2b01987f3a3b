package workerruntime_test

import (
	"strings"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

func TestParseProfilesErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"empty", "", []string{`"profiles"`, "empty"}},
		{"no profiles", "default: a\nprofiles: []\n", []string{`"profiles"`}},
		{"unknown top field", "default: a\nextra: 1\nprofiles:\n  - {name: a, command: [/bin/true]}\n", []string{"extra"}},
		{"unknown profile field", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], comand: x}\n", []string{"comand"}},
		{"bad name", "default: a\nprofiles:\n  - {name: 'a b', command: [/bin/true]}\n", []string{"#1", `"name"`}},
		{"long name", "default: a\nprofiles:\n  - {name: " + strings.Repeat("a", 81) + ", command: [/bin/true]}\n", []string{`"name"`}},
		{"duplicate", "default: a\nprofiles:\n  - {name: a, command: [/bin/true]}\n  - {name: a, command: [/bin/true]}\n", []string{`"a"`, "duplicate"}},
		{"no default", "profiles:\n  - {name: a, command: [/bin/true]}\n", []string{`"default"`}},
		{"default names none", "default: b\nprofiles:\n  - {name: a, command: [/bin/true]}\n", []string{`"default"`, `"b"`}},
		{"no command", "default: a\nprofiles:\n  - {name: a}\n", []string{`profile "a"`, `"command"`}},
		{"relative command", "default: a\nprofiles:\n  - {name: a, command: [./run]}\n", []string{`profile "a"`, `"command"`}},
		{"missing program", "default: a\nprofiles:\n  - {name: a, command: [no-such-program-here]}\n", []string{`profile "a"`, `"command"`, "not found"}},
		{"bad input", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], input: xml}\n", []string{`profile "a"`, `"input"`}},
		{"bad stop_grace", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], stop_grace: soon}\n", []string{`profile "a"`, `"stop_grace"`}},
		{"negative stop_grace", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], stop_grace: -1s}\n", []string{`"stop_grace"`}},
		{"reserved env", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], env: {WORKER_ID: x}}\n", []string{`profile "a"`, `"env"`, "WORKER_ID"}},
		{"bad env name", "default: a\nprofiles:\n  - {name: a, command: [/bin/true], env: {'1X': secretvalue}}\n", []string{`"env"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wr.ParseProfiles([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "secretvalue") {
				t.Errorf("error %q shows an env value", err)
			}
		})
	}
}

func TestParseProfilesDefaults(t *testing.T) {
	p, err := wr.ParseProfiles([]byte("default: b\nprofiles:\n  - {name: a, command: [sh, -c, 'true'], input: jsonl, stop_grace: 250ms, env: {K: v}}\n  - {name: b, label: Bee, command: [/bin/cat]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, ok := p.Lookup("a")
	if !ok || a.Label != "a" || a.Input != wr.InputJSONL || a.StopGrace != 250*time.Millisecond || a.Env["K"] != "v" ||
		!strings.HasPrefix(a.Command[0], "/") || a.Command[2] != "true" {
		t.Fatalf("a: %+v", a)
	}
	b, ok := p.Lookup("")
	if !ok || b.Name != "b" || b.Label != "Bee" || b.Input != wr.InputText || b.StopGrace != wr.DefaultStopGrace {
		t.Fatalf("default: %+v", b)
	}
	if _, ok := p.Lookup("c"); ok {
		t.Fatal("found c")
	}
	if p.List[0].Name != "a" || p.List[1].Name != "b" {
		t.Fatal("file order lost")
	}
}

func TestSampleProfilesLoad(t *testing.T) {
	p, err := wr.LoadProfiles("../../examples/sample-workspace/profiles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Default != "echo" || len(p.List) < 2 {
		t.Fatalf("sample: %+v", p)
	}
	if _, err := wr.LoadProfiles("testdata/does-not-exist.yaml"); err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}
