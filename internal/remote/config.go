package remote

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// DefaultTimeout is the per-request timeout of a remote Runtime.
const DefaultTimeout = 5 * time.Second

// Runtime ids this backend gives its own sources; a remote one may not take them.
var reservedIDs = []registry.RuntimeID{"local-worker-runtime", "embedded-worker-runtime"}

// RuntimeConfig is one remote Runtime of the --runtimes file. Its URL and
// token are unexported and never printed: String, GoString and LogValue
// redact them, so neither %v, %+v, %#v nor a slog attribute shows them.
type RuntimeConfig struct {
	// ID is the Runtime's runtime_id in the browser API.
	ID registry.RuntimeID
	// Label is the display name.
	Label string
	// Timeout bounds every request but the event stream.
	Timeout time.Duration
	baseURL string
	token   string
}

const redacted = "[redacted]"

// String describes the Runtime without its URL or token.
func (c RuntimeConfig) String() string {
	return fmt.Sprintf("remote runtime %s (label %q, timeout %s, url %s, token %s)", c.ID, c.Label, c.Timeout, redacted, redacted)
}

// GoString is String, for %#v.
func (c RuntimeConfig) GoString() string { return c.String() }

// Format makes every verb print String: %v, %+v, %s, %q, %#v.
func (c RuntimeConfig) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is what slog prints: the id, label and timeout only.
func (c RuntimeConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("runtime_id", string(c.ID)), slog.String("label", c.Label),
		slog.Duration("timeout", c.Timeout))
}

// Config is the parsed --runtimes file.
type Config struct {
	Runtimes []RuntimeConfig
}

// String describes the file without URLs or tokens.
func (c Config) String() string {
	parts := make([]string, len(c.Runtimes))
	for i, r := range c.Runtimes {
		parts[i] = r.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Format makes every verb print String.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue lists the runtime ids only.
func (c Config) LogValue() slog.Value {
	ids := make([]string, len(c.Runtimes))
	for i, r := range c.Runtimes {
		ids[i] = string(r.ID)
	}
	return slog.AnyValue(ids)
}

type rawFile struct {
	Runtimes []rawRuntime `yaml:"runtimes"`
}

type rawRuntime struct {
	ID        string `yaml:"id"`
	Label     string `yaml:"label"`
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	Timeout   string `yaml:"timeout"`
}

// LoadConfig reads and validates the --runtimes file. Its errors name the
// file, the entry and the field, never a URL or a token.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("runtimes file %s cannot be read", path)
	}
	cfg, err := ParseConfig(raw, os.ReadFile, getenv)
	if err != nil {
		return Config{}, fmt.Errorf("runtimes file %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates a runtimes file: unknown fields are
// refused; ids are unique, of the id alphabet, and not the backend's own;
// url is http(s) with a host and no credentials, query or fragment; exactly
// one of token_file (read with readFile, trimmed) and token_env (read with
// getenv, trimmed) gives a non-empty token; timeout is a positive duration
// (default 5s).
func ParseConfig(data []byte, readFile func(string) ([]byte, error), getenv func(string) string) (Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f rawFile
	if err := dec.Decode(&f); err != nil {
		// yaml's errors quote the offending line, which may hold a URL.
		return Config{}, errors.New("not a valid runtimes file (YAML with a runtimes list of id, label, url, token_file or token_env, timeout)")
	}
	var cfg Config
	seen := map[registry.RuntimeID]bool{}
	for i, r := range f.Runtimes {
		where := fmt.Sprintf("runtimes[%d]", i)
		id := registry.RuntimeID(r.ID)
		if !registry.ValidID(r.ID) {
			return Config{}, fmt.Errorf("%s: id must be 1 to 120 characters of A-Z a-z 0-9 _ : -", where)
		}
		where += " (" + r.ID + ")"
		for _, res := range reservedIDs {
			if id == res {
				return Config{}, fmt.Errorf("%s: id %s is the backend's own runtime", where, res)
			}
		}
		if seen[id] {
			return Config{}, fmt.Errorf("%s: id is listed twice", where)
		}
		seen[id] = true
		base, err := checkURL(r.URL)
		if err != nil {
			return Config{}, fmt.Errorf("%s: url %w", where, err)
		}
		token, err := readToken(r, readFile, getenv)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", where, err)
		}
		timeout := DefaultTimeout
		if r.Timeout != "" {
			if timeout, err = time.ParseDuration(r.Timeout); err != nil || timeout <= 0 {
				return Config{}, fmt.Errorf("%s: timeout must be a positive duration such as 5s", where)
			}
		}
		label := strings.TrimSpace(r.Label)
		if label == "" {
			label = r.ID
		}
		if len([]rune(label)) > 80 {
			return Config{}, fmt.Errorf("%s: label must be at most 80 characters", where)
		}
		cfg.Runtimes = append(cfg.Runtimes, RuntimeConfig{ID: id, Label: label, Timeout: timeout, baseURL: base, token: token})
	}
	return cfg, nil
}

func checkURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("is required")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", errors.New("does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("must name a host")
	case u.User != nil:
		return "", errors.New("must not hold credentials (use token_file or token_env)")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func readToken(r rawRuntime, readFile func(string) ([]byte, error), getenv func(string) string) (string, error) {
	var token string
	switch {
	case r.TokenFile != "" && r.TokenEnv != "":
		return "", errors.New("give exactly one of token_file and token_env, not both")
	case r.TokenFile != "":
		raw, err := readFile(r.TokenFile)
		if err != nil {
			return "", errors.New("token_file cannot be read")
		}
		token = strings.TrimSpace(string(raw))
	case r.TokenEnv != "":
		token = strings.TrimSpace(getenv(r.TokenEnv))
		if token == "" {
			return "", fmt.Errorf("token_env %s is not set", r.TokenEnv)
		}
	default:
		return "", errors.New("give exactly one of token_file and token_env")
	}
	if token == "" {
		return "", errors.New("the token is empty")
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return "", errors.New("the token must not contain spaces")
	}
	return token, nil
}

// NewRuntimeConfig builds one RuntimeConfig in code (tests, embedding); it
// applies the same rules as ParseConfig.
func NewRuntimeConfig(id, label, baseURL, token string, timeout time.Duration) (RuntimeConfig, error) {
	if !registry.ValidID(id) {
		return RuntimeConfig{}, errors.New("remote: invalid runtime id")
	}
	base, err := checkURL(baseURL)
	if err != nil {
		return RuntimeConfig{}, fmt.Errorf("remote: url %w", err)
	}
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return RuntimeConfig{}, errors.New("remote: invalid token")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if label == "" {
		label = id
	}
	return RuntimeConfig{ID: registry.RuntimeID(id), Label: label, Timeout: timeout, baseURL: base, token: token}, nil
}
