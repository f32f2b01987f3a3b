// Package serveutil holds the start-up plumbing both server commands
// (cmd/server and cmd/worker-runtime) share: flags that may also be set by
// environment variables, and the loopback check that decides whether a
// listener needs a token. What the two commands do differently on purpose
// (their flags, their errors, their shutdown) stays in each command.
package serveutil

import (
	"flag"
	"net"
	"strings"
)

// EnvName is the environment variable of a flag: prefix followed by the
// flag's name in upper case with '-' as '_' (prefix "APP_", flag "state-dir":
// APP_STATE_DIR).
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ApplyEnv sets every flag of fs whose environment variable (named by
// envName, read through getenv) is set and not empty; flags parsed from the
// command line afterwards win over these values. It stops at the first
// value a flag rejects and returns that variable's name and the flag's
// error (the caller words the error; the value is never quoted back).
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string, envName func(string) string) (string, error) {
	var (
		name   string
		envErr error
	)
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				name, envErr = envName(f.Name), err
			}
		}
	})
	return name, envErr
}

// IsLoopbackHost reports whether host names only the loopback interface:
// "localhost" (any case) or a loopback IP. An empty host or 0.0.0.0 listens
// on every interface, so it is not loopback.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
