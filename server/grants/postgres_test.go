package grants_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/internal/testutil/pgtest"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

// replica is one PDP replica on a shared database: its grant store
// (followed in the background) and an engine deciding with it.
type replica struct {
	store *grants.Store
	eng   *engine.Engine
}

func openReplica(t *testing.T, dsn string, opts ...grants.Option) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := grants.OpenPostgres(ctx, dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	r := &replica{store: s, eng: engine.New(exampleStore(t), engine.WithEnricher(s), engine.WithConsumer(s))}
	eventually(t, "first sync", func() bool { return r.state("T-none") == grants.Unknown })
	return r
}

func (r *replica) state(task string) grants.State {
	req, _ := r.store.Enrich(context.Background(), write(task))
	return grants.State(req.TaskState)
}

func (r *replica) allows(t testing.TB, task string) bool {
	res, err := r.eng.Evaluate(context.Background(), "test", write(task))
	if err != nil {
		t.Fatal(err)
	}
	return res.Decision.Allow
}

// eventually polls cond every millisecond for up to ten seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)

	t.Run("replicas share grants and revocations", func(t *testing.T) {
		t.Parallel()
		dsn := srv.Database(t)
		a, b := openReplica(t, dsn), openReplica(t, dsn)
		create(t, a.store, writeSpec("T-9", 15*time.Minute, 0))
		if !a.allows(t, "T-9") {
			t.Fatal("the replica that took the grant denies it")
		}
		eventually(t, "grant reaches the other replica", func() bool { return b.allows(t, "T-9") })
		if _, err := a.store.Revoke(context.Background(), "T-9"); err != nil {
			t.Fatal(err)
		}
		if a.allows(t, "T-9") {
			t.Fatal("revocation is not immediate on the replica that took it")
		}
		eventually(t, "revocation reaches the other replica", func() bool { return !b.allows(t, "T-9") })
		if st := b.state("T-9"); st != grants.Revoked {
			t.Errorf("state on the other replica: %s", st)
		}
		// The kill switch, from the other replica.
		create(t, a.store, writeSpec("T-10", time.Hour, 0))
		eventually(t, "second grant", func() bool { return b.allows(t, "T-10") })
		if gs, err := b.store.RevokePrincipal(context.Background(), uid("Agent", "deployer")); err != nil || len(gs) != 1 {
			t.Fatalf("RevokePrincipal: %v, %v", gs, err)
		}
		eventually(t, "kill switch reaches the first replica", func() bool { return !a.allows(t, "T-10") })
	})

	t.Run("a new replica loads every grant", func(t *testing.T) {
		t.Parallel()
		dsn := srv.Database(t)
		a := openReplica(t, dsn)
		g := writeSpec("T-attrs", time.Hour, 3)
		g.OnBehalfOf = uid("User", "rita")
		create(t, a.store, g)
		b := openReplica(t, dsn)
		got, st, err := b.store.Get("T-attrs")
		if err != nil || st != grants.Live || got.UsesLeft != 3 || got.OnBehalfOf != uid("User", "rita") || got.Scope[0] != uid("Repository", "payments-api") {
			t.Fatalf("loaded %+v %s %v", got, st, err)
		}
		want, _, _ := a.store.Get("T-attrs")
		if !got.ExpiresAt.Equal(want.ExpiresAt) || got.ID != want.ID {
			t.Errorf("loaded %v/%s, created %v/%s", got.ExpiresAt, got.ID, want.ExpiresAt, want.ID)
		}
	})

	t.Run("one-shot grant races across replicas", func(t *testing.T) {
		t.Parallel()
		dsn := srv.Database(t)
		rs := []*replica{openReplica(t, dsn), openReplica(t, dsn)}
		for round := range 5 {
			task := "T-once-" + string(rune('a'+round))
			create(t, rs[0].store, writeSpec(task, time.Hour, 1))
			eventually(t, "grant reaches both", func() bool { return rs[1].state(task) == grants.Live })
			var allows atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				wg.Go(func() {
					<-start
					if rs[i%2].allows(t, task) {
						allows.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			if allows.Load() != 1 {
				t.Fatalf("round %d: %d allows of a one-shot grant across replicas, want 1", round, allows.Load())
			}
		}
	})

	t.Run("a replica cut off from the database stops serving grants", func(t *testing.T) {
		t.Parallel()
		dsn := srv.Database(t)
		p := startProxy(t, srv.Port)
		a := openReplica(t, dsn)
		cut := openReplica(t, strings.Replace(dsn, ":"+strconv.Itoa(srv.Port)+"/", ":"+strconv.Itoa(p.port)+"/", 1),
			grants.WithMaxStaleness(200*time.Millisecond))
		create(t, a.store, writeSpec("T-9", time.Hour, 0))
		eventually(t, "grant reaches the replica", func() bool { return cut.allows(t, "T-9") })
		p.cut()
		eventually(t, "stale after the bound", func() bool { return cut.state("T-9") == grants.Stale })
		if cut.allows(t, "T-9") {
			t.Fatal("a stale replica served a grant")
		}
		if _, err := a.store.Revoke(context.Background(), "T-9"); err != nil { // missed while cut off
			t.Fatal(err)
		}
		create(t, a.store, writeSpec("T-10", time.Hour, 0))
		p.restore()
		eventually(t, "resync after reconnect", func() bool { return cut.state("T-10") == grants.Live })
		if st := cut.state("T-9"); st != grants.Revoked {
			t.Errorf("revocation made while cut off: %s after resync", st)
		}
	})
}

// proxy forwards a loopback port to PostgreSQL and can cut every
// connection, as a network partition would.
type proxy struct {
	port    int
	target  int
	mu      sync.Mutex
	down    bool
	conns   []net.Conn
	lis     net.Listener
	serving sync.WaitGroup
}

func startProxy(t *testing.T, target int) *proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{port: lis.Addr().(*net.TCPAddr).Port, target: target, lis: lis}
	p.serving.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(target))
			if err != nil {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	})
	t.Cleanup(func() { _ = lis.Close(); p.cut(); p.serving.Wait() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
