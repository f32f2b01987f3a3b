package handlers

import (
	"net/http"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Temporary until registry v1 lands on main: the codes of the guard.
const (
	codeUnauthenticated     = registry.Code("unauthenticated")
	codeCrossOriginRejected = registry.Code("cross_origin_rejected")
	codeMisdirectedRequest  = registry.Code("misdirected_request")
)

func init() {
	problemKinds[codeUnauthenticated] = problemKind{http.StatusUnauthorized, "Unauthenticated"}
	problemKinds[codeCrossOriginRejected] = problemKind{http.StatusForbidden, "Cross-origin request rejected"}
	problemKinds[codeMisdirectedRequest] = problemKind{http.StatusMisdirectedRequest, "Misdirected request"}
}
