package compat

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The index cache (Config.IndexCache) is the index's records of the pods it
// could trust, persisted so that a restart only stats each pod instead of
// reading it: at Start the records are seeded from it and the first sweep
// revalidates them as every sweep does, re-reading each pod whose file key
// (device, inode, size, mtime, ctime, mode) is not the one it was read with.
// So a cached record is used only where a record kept in memory would have
// been, and the answer is the one a fresh read gives.
//
// Only records that were trusted when written are kept: pods listed or of
// another workspace, read outside the racy window, whose read did not fail
// in a way that may pass. Pods with a problem (invalid, unreadable, symlinked
// ...) are not kept: they are read again (there are few, and their answer is
// then exactly what the read says). What a record shows is not stored as
// text where it can be derived: the worker id, the display hint and every
// diagnostic are derived again from the pod's name, so a tampered file can at
// most claim a label, role or profile that is itself a sanitized display
// string, for a file key that still matches.
//
// The file is hostile input (it may have been replaced, truncated or
// corrupted): it is used only if it is a regular file of this user that no
// one else can write, at most maxCacheBytes, of this format version, with
// this configuration's fingerprint and an intact checksum, and every record
// decodes and checks; anything else and it is ignored (one info line with a
// reason word, never the path or content) and the store is read in full.

const (
	// cacheMagic starts every index cache file.
	cacheMagic = "RRCIDX\x00\x01"
	// cacheFormatVersion is the layout of the file; another is ignored.
	cacheFormatVersion = 1
	// projectionVersion names what a pod projects to (project, recordFor):
	// change it whenever they change, so that records cached by an older
	// binary are not reused.
	projectionVersion = 1
	// maxCacheBytes bounds the file read (about 60 bytes per pod: 100,000
	// pods take 6 MiB).
	maxCacheBytes = 256 << 20
	// cacheHeaderBytes is the magic, the version and the fingerprint.
	cacheHeaderBytes = len(cacheMagic) + 4 + sha256.Size
	// minCacheRecordBytes is the smallest record (a one-byte name, a
	// one-byte varint per key field, the flags): it bounds the count a
	// file may claim.
	minCacheRecordBytes = 2 + 6 + 1
	// maxCacheNameBytes bounds a pod name (a file name is at most 255
	// bytes on every filesystem the store lives on).
	maxCacheNameBytes = 255
)

// Flags of a cached record.
const (
	cacheStatusMask  = 0x03 // workerStatus
	cacheListed      = 0x04 // listed (else of another workspace)
	cacheStale       = 0x08 // listed with the stale-metadata diagnostic
	cacheHasLabel    = 0x10
	cacheHasRole     = 0x20
	cacheHasProfile  = 0x40
	cacheUnknownBits = 0x80
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCache is why a cache file was not used: its text is a reason word.
type errCache string

func (e errCache) Error() string { return string(e) }

// cacheFingerprint is the digest of everything a projection depends on
// besides the pod's file: a cache written under any other configuration or
// by a binary that projects otherwise does not match.
func cacheFingerprint(workspaceID string, cfg scanConfig) [sha256.Size]byte {
	dataDir := cfg.dataDir
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	h := sha256.New()
	for _, part := range []string{
		"projection", strconv.Itoa(projectionVersion),
		"workspace_id", workspaceID,
		"workspace_root", cfg.root,
		"host_id", string(cfg.hostID),
		"data_dir", dataDir,
	} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write([]byte(part))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// cacheable reports whether rec may be written to the cache: a trusted
// record of a pod directory that is listed or of another workspace.
func cacheable(rec *podRecord) bool {
	return rec != nil && rec.dirType == fs.ModeDir && !rec.racy && !rec.retry && rec.problem == "" &&
		(rec.kind == recListed || rec.kind == recHidden) && rec.entry != nil && rec.key != (fileKey{})
}

// encodeCache is the encoding streamCache writes, in memory (for tests).
func encodeCache(print [sha256.Size]byte, names []string, records map[string]*podRecord) []byte {
	var b bytes.Buffer
	_ = streamCache(&b, print, names, records) // a bytes.Buffer does not fail
	return b.Bytes()
}

// streamCache writes the cache encoding of the cacheable records among names
// (sorted) of records to w: the header, the records, and the CRC-32C of all
// of it. It goes out a record at a time through a small buffer, so that the
// file (6.8 MB at 100,000 pods) is never held in memory while the index
// serves.
func streamCache(w io.Writer, print [sha256.Size]byte, names []string, records map[string]*podRecord) error {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 32<<10)
	buf := make([]byte, 0, 512)
	buf = append(buf, cacheMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, cacheFormatVersion)
	buf = append(buf, print[:]...)
	n := 0
	for _, name := range names {
		if cacheable(records[name]) {
			n++
		}
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	for _, name := range names {
		rec := records[name]
		if !cacheable(rec) {
			continue
		}
		if _, err := bw.Write(appendRecord(buf[:0], rec)); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.LittleEndian.AppendUint32(buf[:0], crc.Sum32()))
	return err
}

// appendRecord appends the encoding of one cacheable record to buf.
func appendRecord(buf []byte, rec *podRecord) []byte {
	e := rec.entry
	buf = appendString(buf, rec.name)
	k := rec.key
	buf = binary.AppendUvarint(buf, k.dev)
	buf = binary.AppendUvarint(buf, k.ino)
	buf = binary.AppendVarint(buf, k.size)
	buf = binary.AppendVarint(buf, k.mtime)
	buf = binary.AppendVarint(buf, k.ctime)
	buf = binary.AppendUvarint(buf, uint64(k.mode))
	flags := byte(e.status) & cacheStatusMask
	if rec.kind == recListed {
		flags |= cacheListed
		if e.diag != nil {
			flags |= cacheStale
		}
	}
	if e.label != "" {
		flags |= cacheHasLabel
	}
	if e.role != nil {
		flags |= cacheHasRole
	}
	if e.profile != nil {
		flags |= cacheHasProfile
	}
	buf = append(buf, flags)
	if e.label != "" {
		buf = appendString(buf, e.label)
	}
	if e.role != nil {
		buf = appendString(buf, *e.role)
	}
	if e.profile != nil {
		buf = appendString(buf, *e.profile)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// cacheReader decodes a cache file's body; the first failure sticks.
type cacheReader struct {
	data []byte
	err  error
}

func (r *cacheReader) fail(reason string) {
	if r.err == nil {
		r.err = errCache(reason)
	}
}

func (r *cacheReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.fail("corrupt")
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *cacheReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.data)
	if n <= 0 {
		r.fail("corrupt")
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *cacheReader) byte() byte {
	if r.err != nil || len(r.data) == 0 {
		r.fail("corrupt")
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

// str reads a string of at most limit bytes.
func (r *cacheReader) str(limit int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(r.data)) {
		r.fail("corrupt")
		return ""
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s
}

// display reads a display string: non-empty and as sanitizeDisplay leaves it.
func (r *cacheReader) display() string {
	s := r.str(4 * maxDisplayRunes)
	if r.err == nil && (s == "" || sanitizeDisplay(s) != s) {
		r.fail("corrupt")
	}
	return s
}

// decodeCache decodes a cache file written for print into pod records keyed
// by pod name. Any error (a reason word) means the whole file is ignored.
func decodeCache(data []byte, print [sha256.Size]byte) (map[string]*podRecord, error) {
	if len(data) < cacheHeaderBytes+1+4 || !strings.HasPrefix(string(data[:len(cacheMagic)]), cacheMagic) {
		return nil, errCache("format")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if binary.LittleEndian.Uint32(data[len(cacheMagic):]) != cacheFormatVersion {
		return nil, errCache("version")
	}
	if [sha256.Size]byte(data[len(cacheMagic)+4:cacheHeaderBytes]) != print {
		return nil, errCache("fingerprint")
	}
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errCache("checksum")
	}
	r := &cacheReader{data: body[cacheHeaderBytes:]}
	count := r.uvarint()
	if r.err != nil || count > uint64(len(r.data)/minCacheRecordBytes) {
		return nil, errCache("corrupt")
	}
	recs := make(map[string]*podRecord, int(count))
	// Roles and profiles repeat across thousands of pods: one intern call
	// (and its lock) per distinct value.
	shared := map[string]*string{}
	share := func(s string) *string {
		p, ok := shared[s]
		if !ok && r.err == nil {
			p = intern(s)
			shared[s] = p
		}
		return p
	}
	prev := ""
	for i := range count {
		name := r.str(maxCacheNameBytes)
		var k fileKey
		k.dev, k.ino = r.uvarint(), r.uvarint()
		k.size, k.mtime, k.ctime = r.varint(), r.varint(), r.varint()
		mode := r.uvarint()
		flags := r.byte()
		var label string
		var role, profile *string
		if flags&cacheHasLabel != 0 {
			label = r.display()
		}
		if flags&cacheHasRole != 0 {
			role = share(r.display())
		}
		if flags&cacheHasProfile != 0 {
			profile = share(r.display())
		}
		if r.err != nil {
			return nil, r.err
		}
		// Names come sorted and unique, are file names, and the key is a
		// regular file's that was read.
		switch {
		case name == "" || (i > 0 && name <= prev) || name == "." || name == ".." || strings.ContainsAny(name, "/\x00"),
			mode > 0xFFFFFFFF || mode&syscall.S_IFMT != syscall.S_IFREG, k.size < 0 || k.size > maxMetadataBytes,
			flags&cacheUnknownBits != 0, workerStatus(flags&cacheStatusMask) > stActiveSegment,
			flags&cacheStale != 0 && flags&cacheListed == 0:
			return nil, errCache("corrupt")
		}
		k.mode = uint32(mode)
		prev = name
		rec := &podRecord{name: name, dirType: fs.ModeDir, key: k, kind: recHidden}
		e := &entry{id: WorkerIDFor(name), hint: sanitizeDisplay(name), role: role, profile: profile,
			status: workerStatus(flags & cacheStatusMask)}
		if label != "" && label != e.hint {
			e.label = label
		}
		if e.labelOrHint() == "" {
			// project never leaves a label empty.
			e.label = "worker"
		}
		if flags&cacheListed != 0 {
			rec.kind, e.visible = recListed, true
			if flags&cacheStale != 0 {
				d := staleDiagnostic(e.id)
				rec.warn = &d
				e.diag = &[1]registry.Diagnostic{d}
			}
		}
		rec.entry = e
		recs[name] = rec
	}
	if len(r.data) != 0 {
		return nil, errCache("corrupt")
	}
	return recs, nil
}

// readCacheFile reads the cache file at path if it may be trusted: a regular
// file (not a symlink) owned by this user, writable by no one else, at most
// maxCacheBytes. Its errors are reason words ("absent" when there is none).
func readCacheFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, errCache("absent")
	case err != nil:
		return nil, errCache("unreadable")
	}
	defer func() { _ = f.Close() }() // read-only: nothing is lost
	fi, err := f.Stat()
	if err != nil {
		return nil, errCache("unreadable")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, errCache("not_regular")
	case !ok || int64(st.Uid) != int64(os.Geteuid()):
		return nil, errCache("foreign_owner")
	case fi.Mode().Perm()&0o022 != 0:
		return nil, errCache("writable_by_others")
	case fi.Size() > maxCacheBytes:
		return nil, errCache("oversize")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCacheBytes+1))
	switch {
	case err != nil:
		return nil, errCache("unreadable")
	case len(data) > maxCacheBytes:
		return nil, errCache("oversize")
	}
	return data, nil
}

// loadCache returns the records of the cache file at path for print, or why
// there are none.
func loadCache(path string, print [sha256.Size]byte) (map[string]*podRecord, error) {
	data, err := readCacheFile(path)
	if err != nil {
		return nil, err
	}
	return decodeCache(data, print)
}

// writeCacheFile replaces the file at path atomically with what write
// writes: a temporary file (mode 0600) in the same directory, written, synced and renamed over
// it, then the directory synced. A failure leaves the previous file (or
// none) in place; its error is a reason word.
func writeCacheFile(path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return errCache("create_failed")
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp makes it 0600 already; Chmod says so whatever the umask.
	if err := f.Chmod(0o600); err != nil {
		return errCache("write_failed")
	}
	if err := write(f); err != nil {
		return errCache("write_failed")
	}
	if err := f.Sync(); err != nil {
		return errCache("write_failed")
	}
	if err := f.Close(); err != nil {
		return errCache("write_failed")
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		ok = true
		return errCache("rename_failed")
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		// The rename is durable once the directory is; a failure only
		// risks the previous file after a crash.
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// cacheReason is the reason word of a cache error (never its path).
func cacheReason(err error) string {
	var e errCache
	if errors.As(err, &e) {
		return string(e)
	}
	return "failed"
}

// cacheLoaded is the outcome of loading the cache file.
type cacheLoaded struct {
	recs map[string]*podRecord
	err  error
}

// loadCacheAsync starts loading the index's cache file, if it has one, for
// seedFromCache to take.
func (ix *index) loadCacheAsync() {
	if ix.cacheFile == "" {
		return
	}
	ix.cacheLoad = make(chan cacheLoaded, 1)
	go func(path string, print [sha256.Size]byte, out chan<- cacheLoaded) {
		recs, err := loadCache(path, print)
		out <- cacheLoaded{recs, err}
	}(ix.cacheFile, ix.cachePrint, ix.cacheLoad)
}

// seedFromCache waits for the cache loadCacheAsync started, if any, and
// fills the index's records from it when it is usable: the first sweep then
// revalidates them by stat. It does nothing after its first call.
func (ix *index) seedFromCache() {
	if ix.cacheLoad == nil {
		return
	}
	loaded := <-ix.cacheLoad
	ix.cacheLoad = nil
	recs, err := loaded.recs, loaded.err
	if err != nil {
		if reason := cacheReason(err); reason == "absent" {
			ix.cfg.log.Debug("local pod store: no index cache yet")
		} else {
			ix.cfg.log.Info("local pod store: index cache ignored, reading every pod", "reason", reason)
		}
		return
	}
	ix.records = recs
	ix.cacheSeeded = len(recs)
	ix.cfg.log.Debug("local pod store: index cache loaded", "records", len(recs))
}

// saveCache writes the index's trusted records to its cache file unless
// nothing was published or read since the last write. A failure is logged
// (a reason word) and tried again at the next occasion.
func (ix *index) saveCache(now time.Time) {
	reads := ix.reads.Load()
	if ix.cacheFile == "" || ix.state != storeOK || (ix.gen == ix.savedGen && reads == ix.savedReads) {
		return
	}
	ix.savedGen, ix.savedReads, ix.savedAt = ix.gen, reads, now
	err := writeCacheFile(ix.cacheFile, func(w io.Writer) error {
		return streamCache(w, ix.cachePrint, ix.names, ix.records)
	})
	if err != nil {
		// Once per reason, not at every attempt.
		if reason := cacheReason(err); reason != ix.cacheFailure {
			ix.cacheFailure = reason
			ix.cfg.log.Info("local pod store: index cache not written", "reason", reason)
		}
		return
	}
	ix.cacheFailure = ""
	ix.cacheWrites.Add(1)
}
