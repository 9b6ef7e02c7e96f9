package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intentpdp/intentpdp/bench/load"
	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// activateOnly activates the scenario's bundle in this process, which has
// activated nothing before, and reports the wall time, the heap the
// snapshot keeps (and how much of it the garbage collector must scan), the
// process's resident memory, and then Decide's latency over the
// scenario's queries for cfg.decideFor. With cfg.cpuProfile it writes a
// CPU profile of the activation there, with cfg.memProfile a heap profile
// of the live snapshot.
func activateOnly(ctx context.Context, sc *scenario.Scenario, cfg config, out io.Writer) error {
	decideFor, memProfile := cfg.decideFor, cfg.memProfile
	runtime.GC() // the generated bundle's garbage is not the activation's
	// The heap before activation, without the bundle's files, which are
	// dropped after it.
	before := int64(heapLive())
	for _, data := range sc.Bundle.Files {
		before -= int64(cap(data))
	}
	store := policystore.NewStore()
	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}
	start, cpuStart := time.Now(), processCPU()
	snap, err := store.Activate(ctx, sc.Bundle)
	took, cpu := time.Since(start), processCPU()-cpuStart
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	hwm := procStatus("VmHWM")
	sc.Bundle = nil // a server drops the bundle's files once activated
	runtime.GC()
	live, scan := int64(heapLive())-before, heapScan()
	n := snap.PolicyCount() + snap.EntityCount()
	fmt.Fprintf(out, "scenario %s: %d policies, %d entities; GOMAXPROCS %d\n", sc.Spec.Name, snap.PolicyCount(), snap.EntityCount(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "activation %v, CPU %v\n", took.Round(time.Millisecond), cpu.Round(10*time.Millisecond))
	fmt.Fprintf(out, "snapshot heap %.1f MiB (%.0f B per policy+entity); the GC scans %.1f MiB of the process's heap\n",
		float64(live)/(1<<20), float64(live)/float64(n), mib(scan))
	fmt.Fprintf(out, "RSS after activation %s, peak during activation %s\n", procStatus("VmRSS"), hwm)
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			return err
		}
	}
	if decideFor <= 0 {
		return nil
	}
	reqs := make([]policystore.Request, len(sc.Queries))
	for i, q := range sc.Queries {
		if reqs[i], err = grpcapi.DecodeRequest(q.Request, engine.DefaultLimits); err != nil {
			return fmt.Errorf("%s: %w", q.Name, err)
		}
		reqs[i].Now = time.Now()
		d, err := snap.Decide(ctx, reqs[i])
		if err != nil || d.Allow != q.Allow {
			return fmt.Errorf("%s: allow=%v err=%v, the scenario expects %v", q.Name, d.Allow, err, q.Allow)
		}
	}
	gcBefore, cpuBefore := cpuSeconds()
	var lat []time.Duration
	for end := time.Now().Add(decideFor); time.Now().Before(end) && ctx.Err() == nil; {
		for _, r := range reqs {
			t := time.Now()
			if _, err := snap.Decide(ctx, r); err != nil {
				return err
			}
			lat = append(lat, time.Since(t))
		}
	}
	gcAfter, cpuAfter := cpuSeconds()
	slices.Sort(lat)
	fmt.Fprintf(out, "Decide p50 %v p99 %v over %d decisions; GC %.1f%% of CPU meanwhile; RSS %s\n",
		load.Percentile(lat, 50), load.Percentile(lat, 99), len(lat),
		100*(gcAfter-gcBefore)/(cpuAfter-cpuBefore), procStatus("VmRSS"))
	runtime.KeepAlive(snap)
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func readMetric(name string) metrics.Sample {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0]
}

// heapLive is the heap marked live by the last garbage collection.
func heapLive() uint64 { return readMetric("/gc/heap/live:bytes").Value.Uint64() }

// heapScan is the part of the heap the garbage collector scans for
// pointers on every cycle.
func heapScan() uint64 { return readMetric("/gc/scan/heap:bytes").Value.Uint64() }

// cpuSeconds is the CPU time the garbage collector spent, and the CPU time
// spent in all (the GC, the scavenger and the program), so far.
func cpuSeconds() (gc, all float64) {
	gc = readMetric("/cpu/classes/gc/total:cpu-seconds").Value.Float64()
	return gc, gc + readMetric("/cpu/classes/user:cpu-seconds").Value.Float64() +
		readMetric("/cpu/classes/scavenge/total:cpu-seconds").Value.Float64()
}

// processCPU is the CPU time, user and system, the process has used so
// far, in clock ticks of 10 ms; 0 where /proc/self/stat cannot say. Unlike
// the wall time, it does not grow when other jobs share the cores.
func processCPU() time.Duration {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends with the last ')':
	// state is the 3rd field, utime and stime the 14th and 15th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	user, errU := strconv.ParseInt(fields[11], 10, 64)
	sys, errS := strconv.ParseInt(fields[12], 10, 64)
	if errU != nil || errS != nil {
		return 0
	}
	return time.Duration(user+sys) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// procStatus reads a field of /proc/self/status, such as VmRSS; "n/a"
// where there is none.
func procStatus(field string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}

// startCPUProfile starts profiling the CPU into path, if not empty; the
// function it returns stops and writes the profile.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
