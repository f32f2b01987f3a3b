package errchain_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
)

func TestTypes(t *testing.T) {
	pathErr := &fs.PathError{Op: "open", Path: "/secret/place", Err: fs.ErrNotExist}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain", errors.New("x"), "*errors.errorString"},
		{"wrapped", fmt.Errorf("reading: %w", pathErr), "*fmt.wrapError <- *fs.PathError <- *errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errchain.Types(tt.err); got != tt.want {
				t.Errorf("Types = %q, want %q", got, tt.want)
			}
		})
	}
}
