//go:build unix && !linux

package compat

import (
	"os"
	"path/filepath"
)

// openMetadata opens podDir/metadata.json without following a final symlink.
// Only Linux also pins the pod directory with openat; elsewhere the Lstat of
// the listing is the check for the directory.
func openMetadata(podDir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(podDir, metadataFileName), metadataOpenFlags, 0)
}
