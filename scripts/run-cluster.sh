#!/bin/sh
# run-cluster: the backend plus two worker-runtime processes on loopback, as
# if on three machines. Each runtime has its own state directory and token
# under .state/cluster/ (git-ignored); the backend reaches them through a
# generated --runtimes file and the browser sees them in /api/runtimes.
# Ctrl-C stops all three (the runtimes stop their workers first). Arguments
# are passed to the backend (make run-cluster passes the sample workspace's).
set -eu

BACKEND_BIN=${BACKEND_BIN:-bin/runtime-registry}
RUNTIME_BIN=${RUNTIME_BIN:-bin/worker-runtime}
LISTEN=${LISTEN:-127.0.0.1:8080}
PROFILES=${PROFILES:-examples/sample-workspace/profiles.yaml}
DIR=.state/cluster

mkdir -p "$DIR"
chmod 700 .state "$DIR"

token() {
	# 32 hex characters from the kernel's random source.
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

pids=""
cleanup() {
	for pid in $pids; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $pids; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

n=0
: > "$DIR/runtimes.yaml.tmp"
echo "runtimes:" >> "$DIR/runtimes.yaml.tmp"
for port in 8181 8182; do
	n=$((n + 1))
	rt="$DIR/rt-$n"
	mkdir -p "$rt/workspace"
	chmod 700 "$rt"
	[ -s "$rt/token" ] || { (umask 077; token > "$rt/token"); }
	"$RUNTIME_BIN" --listen "127.0.0.1:$port" --state-dir "$rt/state" --profiles "$PROFILES" \
		--workspace-root "$rt/workspace" --label "Machine $n" --token-file "$rt/token" \
		2>> "$rt/worker-runtime.log" &
	pids="$pids $!"
	cat >> "$DIR/runtimes.yaml.tmp" <<YAML
  - id: machine-$n
    label: Machine $n
    url: http://127.0.0.1:$port
    token_file: $rt/token
    timeout: 5s
YAML
done
mv "$DIR/runtimes.yaml.tmp" "$DIR/runtimes.yaml"
echo "worker-runtime logs: $DIR/rt-1/worker-runtime.log, $DIR/rt-2/worker-runtime.log" >&2
echo "backend on http://$LISTEN  (try: curl -s http://$LISTEN/api/runtimes)" >&2
"$BACKEND_BIN" --listen "$LISTEN" --runtimes "$DIR/runtimes.yaml" "$@" &
pids="$pids $!"
wait "$!"
