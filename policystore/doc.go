// Package policystore turns policy bundles into decisions.
//
// A Bundle is the raw files of a policy bundle, from a directory (LoadDir,
// LoadFS) or from one of the sources in bundlesrc. Store.Activate checks it
// (signature, manifest, anti-rollback sequence), compiles it into a
// Snapshot (parse, schema validation, entity closures, policy index), runs
// the bundle's own test cases against that snapshot and, only if every step
// passes, publishes it. Snapshot.Decide answers one Request with a
// Decision; a deny is a Decision, and an error means the request could not
// be evaluated.
//
// # Concurrency
//
// A Snapshot is immutable once published and safe for concurrent use;
// Decide takes no lock. A Store publishes its snapshot through an atomic
// pointer: Current never blocks, activations are serialised among
// themselves and build the new snapshot aside, and a failed activation
// leaves the previous snapshot serving. A caller that loads the snapshot
// once and uses it throughout sees one revision.
//
// # Bundle files
//
// Paths are relative to the bundle root; files under tests/ are test cases
// only.
//
//   - *.cedar: policies in Cedar's text syntax. A policy's id is its @id
//     annotation, else FILE:LINE:COLUMN.
//   - *.cedar.json: policies in Cedar's JSON policy-set format,
//     {"staticPolicies": {"ID": POLICY, …}}. A policy's id is its @id
//     annotation, else its key. Templates and template links are refused.
//     Policy ids are unique across all policy files, whatever the format.
//   - *.cedarschema or *.cedarschema.json: the optional schema, at most one.
//     Policies and entities are validated against it (see Manifest.Validation).
//   - entities.json (EntitiesFile): optional entities, Cedar's entity JSON.
//   - manifest.json (ManifestFile): the optional Manifest: revision,
//     validation mode, authoritative entity types, sequence, file digests.
//   - tests/*.json (TestsDir): Case lists that must pass before the bundle
//     goes live.
//   - signature.json (SignatureFile): ed25519 signatures over manifest.json,
//     written by Seal and checked when the Store has verification keys.
package policystore
