//go:build unix

package compat

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// readMetadataFile reads podDir/metadata.json. The Lstat rejects a symlink,
// FIFO or device without opening it; O_NOFOLLOW, O_NONBLOCK and the fstat
// after opening refuse one swapped in between, so a read never follows a link
// and never blocks. At most 1 MiB + 1 byte is read: one byte more than the
// limit is enough to tell that the file is over it.
func readMetadataFile(podDir string) ([]byte, *podProblem) {
	fi, err := os.Lstat(filepath.Join(podDir, metadataFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, unreadable("missing", err)
	case err != nil:
		return nil, unreadable("stat_failed", err)
	case !fi.Mode().IsRegular():
		return nil, unreadable("not_regular", nil)
	}
	f, err := openMetadata(podDir)
	if err != nil {
		return nil, unreadable("open_failed", err)
	}
	// Read-only: a close error loses nothing.
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err != nil {
		return nil, unreadable("stat_failed", err)
	} else if !st.Mode().IsRegular() {
		return nil, unreadable("not_regular", nil)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMetadataBytes+1))
	if err != nil {
		return nil, unreadable("read_failed", err)
	}
	if len(data) > maxMetadataBytes {
		return nil, invalid("oversize", nil)
	}
	return data, nil
}

// metadataOpenFlags never follow a final symlink and never wait for a writer
// on a FIFO.
const metadataOpenFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
