//go:build !linux

package compat

import (
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// watcher watches pods/ and the pod directories with fsnotify (Linux has its
// own, leaner one: watch_linux.go).
type watcher struct {
	// Events and Errors are closed when the watcher is.
	Events  chan fsnotify.Event
	Errors  chan error
	w       *fsnotify.Watcher
	podsDir string
}

// newWatcher makes a watcher of podsDir whose event channel holds buffer
// events; nothing is watched until addPods and addPod.
func newWatcher(podsDir string, buffer int) (*watcher, error) {
	w, err := fsnotify.NewBufferedWatcher(uint(buffer)) //nolint:gosec // a small positive constant
	if err != nil {
		return nil, err
	}
	return &watcher{Events: w.Events, Errors: w.Errors, w: w, podsDir: podsDir}, nil
}

// addPods watches pods/ itself.
func (w *watcher) addPods() error { return w.w.Add(w.podsDir) }

// reserve does nothing: fsnotify sizes its own tables.
func (w *watcher) reserve(int) {}

// addPod watches the pod directory name.
func (w *watcher) addPod(name string) error { return w.w.Add(filepath.Join(w.podsDir, name)) }

// close stops the watcher and releases every watch. It returns nil.
func (w *watcher) close() error {
	_ = w.w.Close() // nothing is lost: the index polls or watches again
	return nil
}
