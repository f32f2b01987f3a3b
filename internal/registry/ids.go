package registry

// MaxIDLength is the longest id the registry accepts or produces.
const MaxIDLength = 120

// RuntimeID is the Runtime authority: the opaque, validated id of one Runtime.
type RuntimeID string

// HostID is the opaque, validated id of one host reported by a Runtime.
type HostID string

// WorkerID is the opaque, validated id of one Worker within its Runtime. On its
// own it never selects a Worker: see WorkerRef.
type WorkerID string

// WorkerRef is the Worker authority key: a Worker is reached only through the
// Runtime that owns it, so two Runtimes may both have a Worker with the same
// WorkerID.
type WorkerRef struct {
	RuntimeID RuntimeID
	WorkerID  WorkerID
}

// ValidID reports whether s is a well-formed id: 1 to 120 characters of ASCII
// letters, digits, '_', ':' and '-'. It is the single id rule of the API.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_' || c == ':' || c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseRuntimeID validates s as a RuntimeID. It returns an invalid_identifier
// *Error naming the field when s is not a valid id.
func ParseRuntimeID(s string) (RuntimeID, error) {
	if !ValidID(s) {
		return "", InvalidIdentifier("runtime_id")
	}
	return RuntimeID(s), nil
}

// ParseHostID validates s as a HostID. It returns an invalid_identifier *Error
// naming the field when s is not a valid id.
func ParseHostID(s string) (HostID, error) {
	if !ValidID(s) {
		return "", InvalidIdentifier("host_id")
	}
	return HostID(s), nil
}

// ParseWorkerID validates s as a WorkerID. It returns an invalid_identifier
// *Error naming the field when s is not a valid id.
func ParseWorkerID(s string) (WorkerID, error) {
	if !ValidID(s) {
		return "", InvalidIdentifier("worker_id")
	}
	return WorkerID(s), nil
}

// ParseWorkerRef validates both halves of a Worker authority key.
func ParseWorkerRef(runtimeID, workerID string) (WorkerRef, error) {
	rid, err := ParseRuntimeID(runtimeID)
	if err != nil {
		return WorkerRef{}, err
	}
	wid, err := ParseWorkerID(workerID)
	if err != nil {
		return WorkerRef{}, err
	}
	return WorkerRef{RuntimeID: rid, WorkerID: wid}, nil
}

// InvalidIdentifier reports that the id in field (runtime_id, host_id or
// worker_id) is not a valid id. Its detail is fixed text: it never echoes the
// rejected value.
func InvalidIdentifier(field string) *Error {
	return &Error{Code: CodeInvalidIdentifier, Field: field, Detail: "The " + field + " is not a valid identifier: 1 to 120 characters of letters, digits, '_', ':' or '-'."}
}
