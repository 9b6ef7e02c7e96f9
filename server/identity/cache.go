package identity

import (
	"crypto/sha256"
	"sync"
)

// cache holds verified tokens by the SHA-256 of the token, so no token is
// kept. It is bounded: when full, an arbitrary entry (Go's map order) is
// evicted. Entries are checked against the clock and the key set on every
// hit by Verify, never trusted blindly. It is safe for concurrent use.
type cache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]*Verified
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[[sha256.Size]byte]*Verified, min(max, 1024))}
}

func (c *cache) get(k [sha256.Size]byte) (*Verified, bool) {
	c.mu.RLock()
	v, ok := c.entries[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *cache) put(k [sha256.Size]byte, v *Verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = v
}

func (c *cache) remove(k [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, k)
	c.mu.Unlock()
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
