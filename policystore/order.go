package policystore

import (
	"cmp"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// CompareUIDs orders entity UIDs by type, then id: the one order in which
// intentpdp lists UIDs (ignored request data, candidates of a search,
// validation problems), so that every listing is stable. It allocates
// nothing, unlike comparing UID strings, which matters for requests with
// many entities.
func CompareUIDs(a, b types.EntityUID) int {
	return cmp.Or(strings.Compare(string(a.Type), string(b.Type)), strings.Compare(string(a.ID), string(b.ID)))
}
