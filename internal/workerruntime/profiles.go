package workerruntime

import (
	"errors"
	"time"
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

// LoadProfiles reads and validates the YAML profiles file. Its errors name
// the file, the profile and the field.
func LoadProfiles(path string) (*Profiles, error) {
	return nil, errors.New("internal: not built yet")
}

// ParseProfiles parses and validates a profiles file's content.
func ParseProfiles(data []byte) (*Profiles, error) {
	return nil, errors.New("internal: not built yet")
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
