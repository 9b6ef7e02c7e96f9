//go:build !race

package policystore

const corpusStride = 1
