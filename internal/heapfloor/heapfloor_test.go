package heapfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		floor, live uint64
		base, want  int
	}{
		{256 * mib, 32 * mib, 100, 700},  // goal 256 MiB
		{256 * mib, 128 * mib, 100, 100}, // the floor is what GOGC gives anyway
		{256 * mib, 200 * mib, 100, 100}, // the floor alone would collect sooner than GOGC
		{256 * mib, 300 * mib, 100, 100}, // above the floor: GOGC's proportion
		{256 * mib, 32 * mib, 800, 800},  // never below the base
		{256 * mib, 0, 100, 100},         // no cycle yet
	} {
		if got := Percent(c.floor, c.base, c.live); got != c.want {
			t.Errorf("Percent(floor %d MiB, base %d, live %d MiB) = %d, want %d", c.floor/mib, c.base, c.live/mib, got, c.want)
		}
	}
}

// TestStartFollowsCollections: after a collection the goal is raised to the
// floor, and Stop puts the base back.
func TestStartFollowsCollections(t *testing.T) {
	adjusted := make(chan struct{}, 1)
	f := start(&Floor{floor: 1 << 40, base: 100, // far above any live heap of this test
		adjusted: func() {
			select {
			case adjusted <- struct{}{}:
			default: // the test has heard of one already
			}
		}})
	runtime.GC() // a full cycle that finds the sentinel unreachable
	<-adjusted   // its finaliser has run, on its own goroutine
	if got := gogc(); got <= 100 {
		f.Stop()
		t.Fatalf("GOGC %d after a collection, want above 100: the floor never applied", got)
	}
	f.Stop()
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Errorf("after Stop GOGC is %d, want 100", got)
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestStartUnlessGOGC: as serve does, no floor when asked for none or
// when the environment sets GOGC, which it reports.
func TestStartUnlessGOGC(t *testing.T) {
	if f, gogc := StartUnlessGOGC(0); f != nil || gogc != "" {
		t.Errorf("StartUnlessGOGC(0) = %v, %q; want no floor", f, gogc)
	}
	t.Setenv("GOGC", "400")
	if f, gogc := StartUnlessGOGC(DefaultMiB); f != nil || gogc != "400" {
		t.Errorf("with GOGC=400: StartUnlessGOGC = %v, %q; want no floor, \"400\"", f, gogc)
	}
}
