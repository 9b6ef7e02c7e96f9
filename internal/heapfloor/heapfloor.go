// Package heapfloor keeps the garbage collector's heap goal at or above a
// floor. With GOGC=100 the collector runs whenever the heap has grown by
// its live size, so a PDP whose live heap is small (its snapshot holds few
// pointers) collects very often at a high request rate: its GC CPU follows
// the allocation rate. A floor makes that cheap: a small heap may grow to
// the floor before a cycle, while a large one keeps GOGC's proportion.
//
// After each cycle the percent is set to max(base, floor/live − 1), so the
// goal is max(floor, live × (1 + base/100)). GOMEMLIMIT, when set, still
// bounds the heap.
//
// `intentpdp serve` starts one (--gc-min-heap-mib); the benchmarks of
// bench/ start the same, so they measure the collector as it is shipped.
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultMiB is the floor `intentpdp serve` keeps unless told otherwise.
const DefaultMiB = 256

// Floor is a running heap floor; Stop ends it.
type Floor struct {
	floor uint64
	base  int
	// adjusted, when set, is called after each adjustment a collection
	// brings, so a test can wait for one.
	adjusted func()

	mu      sync.Mutex
	stopped bool
}

// Start keeps the heap goal at or above floor bytes, the percent never
// below base (the GOGC it replaces, normally 100).
func Start(floor uint64, base int) *Floor {
	return start(&Floor{floor: floor, base: base})
}

func start(f *Floor) *Floor {
	if f.adjust() {
		f.arm()
	}
	return f
}

// StartUnlessGOGC is the floor as `intentpdp serve` keeps it: floorMiB
// MiB over GOGC's default percent, 100. It starts none (nil) when floorMiB
// is 0 or when the environment sets GOGC, which then decides alone; gogc
// is that setting, for the caller to say why.
func StartUnlessGOGC(floorMiB int) (f *Floor, gogc string) {
	if floorMiB == 0 {
		return nil, ""
	}
	if gogc, set := os.LookupEnv("GOGC"); set {
		return nil, gogc
	}
	return Start(uint64(floorMiB)<<20, 100), ""
}

// Stop ends the tuning and restores the base percent.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	debug.SetGCPercent(f.base)
}

// arm asks to hear of the next collection: a sentinel that is unreachable
// at once is finalised by the next cycle, and its finaliser arms anew.
func (f *Floor) arm() {
	sentinel := new([16]byte) // large enough not to share a tiny-alloc block
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		running := f.adjust()
		if f.adjusted != nil {
			f.adjusted()
		}
		if running {
			f.arm()
		}
	})
}

// adjust sets the percent for the last cycle's live heap, unless stopped.
func (f *Floor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		debug.SetGCPercent(Percent(f.floor, f.base, liveHeap()))
	}
	return !f.stopped
}

// Percent is the GOGC that makes the heap goal of a live heap of live bytes
// max(floor, live × (1 + base/100)).
func Percent(floor uint64, base int, live uint64) int {
	if live == 0 || live >= floor {
		return base
	}
	p := int((floor - live) * 100 / live) // goal = live × (1 + p/100) = floor
	return max(p, base)
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
