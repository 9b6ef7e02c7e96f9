//go:build race

package policystore

// corpusStride makes the race-enabled run, which is several times slower,
// check every fourth corpus case; plain `go test` checks them all.
const corpusStride = 4
