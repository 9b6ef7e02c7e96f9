package engine

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// idSource makes decision ids: UUIDv7 (RFC 9562), the 48-bit Unix time in
// milliseconds followed by a 42-bit sequence and a 32-bit process tag,
// both random at start. The sequence makes ids unique within a process
// and orders the ids of one millisecond in the order they were made; the
// random start and tag keep processes apart. Unlike a fresh random UUID
// per decision, it needs no entropy and no lock per id: an atomic add and
// one allocation, the string.
type idSource struct {
	seq atomic.Uint64
	tag uint32
}

func newIDSource() *idSource {
	var seed [12]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails (Go 1.24+)
	s := &idSource{tag: binary.BigEndian.Uint32(seed[8:])}
	s.seq.Store(binary.BigEndian.Uint64(seed[:8]))
	return s
}

const seqBits = 42

// next returns the id of a decision made at now.
func (s *idSource) next(now time.Time) string {
	seq := s.seq.Add(1) & (1<<seqBits - 1)
	var u [16]byte
	binary.BigEndian.PutUint64(u[0:8], uint64(now.UnixMilli())<<16|0x7<<12|seq>>30) // time, version 7, sequence high 12 bits
	binary.BigEndian.PutUint64(u[8:16], 0b10<<62|(seq&(1<<30-1))<<32|uint64(s.tag)) // variant, sequence low 30 bits, tag
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
	return string(out[:])
}
