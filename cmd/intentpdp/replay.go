package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

const replayUsage = `usage: intentpdp replay --bundle CANDIDATE --log decisions.jsonl[.gz] [--log …] [flags]

Decides every logged request again against the candidate bundle and prints
what would change. Exits 1 when a --max-* limit is exceeded.`

// replay re-decides logged decisions against a candidate bundle and
// reports the differences; it fails (exit 1) when a limit is exceeded, so
// that CI can gate a bundle on recorded traffic.
func replay(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stdout)
	bundlePath := fs.String("bundle", "", "candidate bundle: a directory or an archive (required)")
	var logs stringList
	fs.Var(&logs, "log", "decision log file, .gz for gzip (repeatable, or comma-separated; - for stdin)")
	var out reportOptions
	out.bindFlags(fs)
	var keys stringList
	fs.Var(&keys, "verify-key", "PEM ed25519 public key the candidate must be signed by (repeatable)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "goroutines deciding records")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logs = append(logs, fs.Args()...)
	if *bundlePath == "" || len(logs) == 0 {
		return errors.New(replayUsage)
	}
	pub, err := readPublicKeys(keys)
	if err != nil {
		return err
	}
	snap, err := activateOffline(ctx, *bundlePath, pub, stdout)
	if err != nil {
		return err
	}
	rep := newReport("replay", snap.Revision(), out.examples)
	start := time.Now()
	for _, path := range logs {
		if err := replayFile(ctx, path, snap, rep, max(*workers, 1)); err != nil {
			return err
		}
	}
	rep.finish(time.Since(start))
	return out.emit(stdout, rep)
}

// replayFile decides every decision record of one log file, in parallel:
// one reader hands batches of lines to the workers.
func replayFile(ctx context.Context, path string, snap *policystore.Snapshot, rep *report, workers int) error {
	r, closeFn, err := openLog(path)
	if err != nil {
		return err
	}
	defer closeFn()
	type batch struct {
		first int // index of the batch's first line in the report
		lines [][]byte
	}
	batches := make(chan batch, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			part := newReport("", "", rep.maxExamples)
			for b := range batches {
				for i, line := range b.lines {
					replayLine(ctx, snap, part, b.first+i, line)
				}
			}
			rep.merge(part)
		})
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	const batchSize = 256
	cur := batch{first: rep.seen}
	for sc.Scan() {
		cur.lines = append(cur.lines, bytes.Clone(sc.Bytes()))
		if len(cur.lines) == batchSize {
			batches <- cur
			cur = batch{first: cur.first + batchSize}
		}
	}
	if len(cur.lines) > 0 {
		batches <- cur
	}
	rep.seen = cur.first + len(cur.lines)
	close(batches)
	wg.Wait()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// replayLine decides one logged decision again and records the outcome.
func replayLine(ctx context.Context, snap *policystore.Snapshot, rep *report, index int, line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	l, err := decisionlog.ParseLine(line)
	if err != nil {
		rep.Malformed++
		return
	}
	if l.Kind != "" {
		rep.Skipped++ // shadow records repeat a decision already counted
		return
	}
	rep.Records++
	req, err := l.Request()
	if errors.Is(err, decisionlog.ErrUnreplayable) {
		rep.Unreplayable++
		return
	}
	if err != nil {
		rep.Malformed++
		return
	}
	d, err := snap.Decide(ctx, req)
	if err != nil {
		rep.Failed++
		return
	}
	rep.add(index, l.DecisionID, req, l.Allow(), l.PolicyIDs(), l.Revision, d)
}

// openLog opens a decision log, gunzipping it when it is compressed.
func openLog(path string) (io.Reader, func(), error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return gz, func() { gz.Close(); f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}

// report is the outcome of deciding recorded or test requests against a
// candidate: counts, the policies behind each change, and the first
// examples. A report filled by several workers is merged into one.
type report struct {
	Command   string `json:"command"`
	Candidate string `json:"candidate_revision"`
	// Records are decision records read; Skipped shadow records; Malformed
	// lines that are no decision record; Unreplayable records with
	// redacted or missing fields; Failed requests the candidate could not
	// evaluate.
	Records      int `json:"records,omitempty"`
	Skipped      int `json:"skipped_shadow_records,omitempty"`
	Malformed    int `json:"malformed,omitempty"`
	Unreplayable int `json:"unreplayable,omitempty"`
	Failed       int `json:"failed,omitempty"`
	// Decided requests were decided by the candidate; Changed of them got
	// the other outcome, AllowToDeny plus DenyToAllow. ReasonsChanged kept
	// the outcome with other determining policies.
	Decided        int `json:"decided"`
	Changed        int `json:"changed"`
	AllowToDeny    int `json:"allow_to_deny"`
	DenyToAllow    int `json:"deny_to_allow"`
	ReasonsChanged int `json:"reasons_changed"`
	// ByPolicy counts changes by the policy that caused them (see cause).
	ByPolicy []policyChanges `json:"by_policy"`
	Examples []change        `json:"examples"`
	// Seconds and PerSecond time the decisions.
	Seconds   float64 `json:"seconds,omitempty"`
	PerSecond float64 `json:"records_per_second,omitempty"`

	maxExamples int
	byPolicy    map[string]*policyChanges
	seen        int // lines read so far, to number the next file's
	mu          sync.Mutex
}

type policyChanges struct {
	Policy      string `json:"policy"`
	AllowToDeny int    `json:"allow_to_deny"`
	DenyToAllow int    `json:"deny_to_allow"`
}

// change is one request whose outcome the candidate changes.
type change struct {
	index     int
	ID        string   `json:"id"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Was       []string `json:"was_policies"`
	WasRev    string   `json:"was_revision,omitempty"`
	Now       []string `json:"candidate_policies"`
	Cause     []string `json:"cause"`
	Principal string   `json:"principal"`
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	WouldHave []string `json:"would_have,omitempty"`
}

func newReport(command, candidate string, maxExamples int) *report {
	return &report{Command: command, Candidate: candidate, maxExamples: maxExamples, byPolicy: map[string]*policyChanges{}}
}

// cause names the policies behind a change: the candidate's determining
// policies when it has any (a forbid that now matches, a permit that now
// allows); otherwise the change is a permit that no longer applies, named
// after the policies that determined the old decision.
func cause(was []string, d policystore.Decision) []string {
	if ids := d.PolicyIDs(); len(ids) > 0 {
		return ids
	}
	out := make([]string, len(was))
	for i, id := range was {
		out[i] = id + " (no longer applies)"
	}
	if len(out) == 0 {
		out = []string{"(none)"}
	}
	return out
}

func (r *report) add(index int, id string, req policystore.Request, wasAllow bool, was []string, wasRev string, d policystore.Decision) {
	r.Decided++
	if wasAllow == d.Allow {
		if !slices.Equal(slices.Sorted(slices.Values(was)), slices.Sorted(slices.Values(d.PolicyIDs()))) {
			r.ReasonsChanged++
		}
		return
	}
	r.Changed++
	if wasAllow {
		r.AllowToDeny++
	} else {
		r.DenyToAllow++
	}
	c := cause(was, d)
	for _, p := range c {
		pc := r.byPolicy[p]
		if pc == nil {
			pc = &policyChanges{Policy: p}
			r.byPolicy[p] = pc
		}
		if wasAllow {
			pc.AllowToDeny++
		} else {
			pc.DenyToAllow++
		}
	}
	if len(r.Examples) < r.maxExamples || r.maxExamples > 0 && index < r.Examples[len(r.Examples)-1].index {
		r.Examples = append(r.Examples, change{index: index, ID: id, From: outcome(wasAllow), To: outcome(d.Allow),
			Was: was, WasRev: wasRev, Now: d.PolicyIDs(), Cause: c, WouldHave: d.WouldHave,
			Principal: req.Principal.String(), Action: req.Action.String(), Resource: req.Resource.String()})
		r.trimExamples()
	}
}

func (r *report) trimExamples() {
	slices.SortFunc(r.Examples, func(a, b change) int { return a.index - b.index })
	if len(r.Examples) > r.maxExamples {
		r.Examples = r.Examples[:r.maxExamples]
	}
}

// merge adds part's counts and examples to r; workers merge concurrently.
func (r *report) merge(part *report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Records += part.Records
	r.Skipped += part.Skipped
	r.Malformed += part.Malformed
	r.Unreplayable += part.Unreplayable
	r.Failed += part.Failed
	r.Decided += part.Decided
	r.Changed += part.Changed
	r.AllowToDeny += part.AllowToDeny
	r.DenyToAllow += part.DenyToAllow
	r.ReasonsChanged += part.ReasonsChanged
	for p, pc := range part.byPolicy {
		if cur := r.byPolicy[p]; cur != nil {
			cur.AllowToDeny += pc.AllowToDeny
			cur.DenyToAllow += pc.DenyToAllow
		} else {
			r.byPolicy[p] = pc
		}
	}
	r.Examples = append(r.Examples, part.Examples...)
	r.trimExamples()
}

// finish sorts the policies by how many changes they caused.
func (r *report) finish(elapsed time.Duration) {
	r.ByPolicy = r.ByPolicy[:0]
	for _, pc := range r.byPolicy {
		r.ByPolicy = append(r.ByPolicy, *pc)
	}
	slices.SortFunc(r.ByPolicy, func(a, b policyChanges) int {
		if d := (b.AllowToDeny + b.DenyToAllow) - (a.AllowToDeny + a.DenyToAllow); d != 0 {
			return d
		}
		return strings.Compare(a.Policy, b.Policy)
	})
	if r.Examples == nil {
		r.Examples = []change{}
	}
	if elapsed > 0 {
		r.Seconds = elapsed.Seconds()
		r.PerSecond = float64(r.Records) / elapsed.Seconds()
	}
}

func outcome(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// reportOptions are the output and gating flags replay and diff share.
type reportOptions struct {
	format                     string
	examples                   int
	maxChanges, maxA2D, maxD2A int
}

func (o *reportOptions) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "format", "markdown", "report format: markdown or json")
	fs.IntVar(&o.examples, "examples", 10, "changed decisions listed as examples")
	fs.IntVar(&o.maxChanges, "max-changes", -1, "exit 1 when more decisions change than this (-1: no limit)")
	fs.IntVar(&o.maxA2D, "max-allow-to-deny", -1, "exit 1 when more allows become denies than this (-1: no limit)")
	fs.IntVar(&o.maxD2A, "max-deny-to-allow", -1, "exit 1 when more denies become allows than this (-1: no limit)")
}

// emit prints rep and returns an error naming every limit it exceeds.
func (o *reportOptions) emit(w io.Writer, rep *report) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	case "markdown", "md":
		writeMarkdown(w, rep)
	default:
		return fmt.Errorf("format must be markdown or json, not %q", o.format)
	}
	var errs []error
	for _, l := range []struct {
		name       string
		got, limit int
	}{{"max-changes", rep.Changed, o.maxChanges}, {"max-allow-to-deny", rep.AllowToDeny, o.maxA2D}, {"max-deny-to-allow", rep.DenyToAllow, o.maxD2A}} {
		if l.limit >= 0 && l.got > l.limit {
			errs = append(errs, fmt.Errorf("%d exceeds --%s %d", l.got, l.name, l.limit))
		}
	}
	return errors.Join(errs...)
}

func writeMarkdown(w io.Writer, r *report) {
	fmt.Fprintf(w, "# intentpdp %s: candidate %s\n\n", r.Command, r.Candidate)
	fmt.Fprintf(w, "| | count |\n|---|---:|\n")
	rows := []struct {
		k string
		v int
	}{{"decided", r.Decided}, {"changed", r.Changed}, {"allow → deny", r.AllowToDeny}, {"deny → allow", r.DenyToAllow},
		{"same outcome, other policies", r.ReasonsChanged}}
	if r.Command == "replay" {
		rows = append([]struct {
			k string
			v int
		}{{"records", r.Records}}, rows...)
		rows = append(rows, []struct {
			k string
			v int
		}{{"unreplayable (redacted or incomplete)", r.Unreplayable}, {"not evaluable by the candidate", r.Failed},
			{"malformed lines", r.Malformed}, {"shadow records skipped", r.Skipped}}...)
	}
	for _, row := range rows {
		fmt.Fprintf(w, "| %s | %d |\n", row.k, row.v)
	}
	if len(r.ByPolicy) > 0 {
		fmt.Fprintf(w, "\n## Changes by policy\n\n| policy | allow → deny | deny → allow |\n|---|---:|---:|\n")
		for _, p := range r.ByPolicy {
			fmt.Fprintf(w, "| %s | %d | %d |\n", p.Policy, p.AllowToDeny, p.DenyToAllow)
		}
	}
	if len(r.Examples) > 0 {
		fmt.Fprintf(w, "\n## First %d changes\n\n| id | change | principal | action | resource | was | candidate |\n|---|---|---|---|---|---|---|\n", len(r.Examples))
		for _, e := range r.Examples {
			fmt.Fprintf(w, "| %s | %s → %s | %s | %s | %s | %s | %s |\n", e.ID, e.From, e.To, e.Principal, e.Action, e.Resource,
				strings.Join(e.Was, ", "), strings.Join(e.Now, ", "))
		}
	}
	if r.PerSecond > 0 {
		fmt.Fprintf(w, "\n%d records in %.2fs (%.0f records/s)\n", r.Records, r.Seconds, r.PerSecond)
	}
}
