package policystore

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// ErrRollback marks a bundle refused because its manifest sequence is older
// than the active bundle's.
var ErrRollback = errors.New("bundle is older than the active bundle")

// ActivationResult describes one Activate call, successful or not.
type ActivationResult struct {
	// Source is where the attempted bundle came from.
	Source string
	// Revision and Sequence are the attempted bundle's, when known.
	Revision string
	Sequence int64
	// At is when the attempt started; Duration how long it took.
	At       time.Time
	Duration time.Duration
	// Err is nil when the bundle went live.
	Err error
	// Snapshot is the snapshot that went live, nil on failure.
	Snapshot *Snapshot
}

// build runs every check a bundle must pass, in order: signature, manifest,
// sequence, compilation (parse, schema validation, id uniqueness) and the
// bundle's own test cases. The manifest is read once, here, and what each
// step needs of it is taken from that one reading. res is filled in as facts
// become known. It must be called with s.mu held, so that the rollback check
// sees the snapshot that will be replaced.
func (s *Store) build(b *Bundle, res *ActivationResult) (*Snapshot, error) {
	if len(s.keys) > 0 {
		if err := verifyManifestSignature(b, s.keys); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
	}
	m, problems := readManifest(b)
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	switch {
	case len(s.keys) > 0:
		if err := verifyDigests(b, m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
	case m.Files != nil:
		// A manifest that lists digests seals its bundle even unsigned: a
		// directory caught half-way through an update (a new manifest
		// beside old policies) is refused instead of served.
		if err := verifyDigests(b, m); err != nil {
			return nil, &ValidationError{Problems: []Problem{manifestProblem("files do not match the manifest: %v", err)}}
		}
	}
	res.Sequence = m.Sequence
	if active := s.current.Load(); active != nil && m.Sequence < active.sequence && !s.allowRollback {
		return nil, fmt.Errorf("%w: sequence %d is lower than the active %d (revision %s)",
			ErrRollback, m.Sequence, active.sequence, active.revision)
	}
	snap, err := compile(b, m, nil)
	if err != nil {
		return nil, err
	}
	if problems := s.runtimeEntityProblems(snap); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	s.uniqueRevision(snap)
	res.Revision = snap.revision
	if problems := RunCases(b, snap); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return snap, nil
}

// uniqueRevision keeps "a revision names one content": when snap reuses a
// manifest revision that went live with different content before (a policy
// file edited without bumping the manifest), the content hash is appended,
// so that no decision ever reports a revision another content also had.
// s.mu is held.
func (s *Store) uniqueRevision(snap *Snapshot) {
	snap.baseRevision = snap.revision
	if first, seen := s.contents[snap.baseRevision]; seen && first != snap.contentHash {
		snap.revision = snap.baseRevision + "+" + snap.contentHash
	}
}

// runtimeEntityProblems lists the bundle's entities of a type the PDP
// supplies at run time (see WithRuntimeEntityTypes).
func (s *Store) runtimeEntityProblems(snap *Snapshot) []Problem {
	if len(s.runtimeTypes) == 0 {
		return nil
	}
	var found []types.EntityUID
	for uid := range snap.entities.All() {
		if slices.Contains(s.runtimeTypes, uid.Type) {
			found = append(found, uid)
		}
	}
	slices.SortFunc(found, CompareUIDs)
	var problems []Problem
	for _, uid := range found {
		problems = append(problems, Problem{File: EntitiesFile, Message: fmt.Sprintf(
			"entity %s: entities of type %s are task grants, created through the grant API; the bundle may not define them", uid, uid.Type)})
	}
	return problems
}
