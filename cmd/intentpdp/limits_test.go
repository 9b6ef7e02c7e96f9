package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// zeroHasMeaning lists the flags whose default SetDefaults cannot supply,
// because the zero value means something else: an empty listen address
// turns its listener off (an empty --listen is refused), and false, 0 and
// "none" are choices of their own. Flags whose default is their zero value
// ("", false, 0) need no entry.
var zeroHasMeaning = map[string]string{
	"listen":                   "required",
	"http-listen":              "off",
	"admin-listen":             "off",
	"metrics-listen":           "off",
	"watch":                    "no watching",
	"trace-sample-ratio":       "sample no new traces",
	"decision-log-max-backups": "keep every rotated file",
	"gc-min-heap-mib":          "GOGC alone",
}

// TestConfigDefaultsMatchFlags: a Config built in code and given
// SetDefaults behaves like the flags' defaults, except where the zero
// value is a choice of its own (and there SetDefaults keeps the zero); and
// SetDefaults leaves the flags' defaults alone. Every field of Config is
// bound to a flag, so no setting escapes the check.
func TestConfigDefaultsMatchFlags(t *testing.T) {
	t.Parallel()
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.bindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	fs.VisitAll(func(f *flag.Flag) {
		if got := f.Value.String(); got != f.DefValue {
			t.Errorf("--%s: SetDefaults turned the flag default %q into %q", f.Name, f.DefValue, got)
		}
	})
	c = Config{} // the flags still point into c, so they now read the zero Config
	zero := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { zero[f.Name] = f.Value.String() })
	c.SetDefaults()
	fs.VisitAll(func(f *flag.Flag) {
		got := f.Value.String()
		if _, ok := zeroHasMeaning[f.Name]; ok {
			if got != zero[f.Name] {
				t.Errorf("--%s: its zero value is a choice, but SetDefaults turns it into %q", f.Name, got)
			}
			if f.DefValue == zero[f.Name] {
				t.Errorf("--%s: exempt, but its flag default is the zero value %q anyway; drop it from zeroHasMeaning", f.Name, f.DefValue)
			}
			return
		}
		if got != f.DefValue {
			t.Errorf("--%s: flag default %q, but SetDefaults gives a zero Config %q", f.Name, f.DefValue, got)
		}
	})
	for name := range zeroHasMeaning {
		if fs.Lookup(name) == nil {
			t.Errorf("zeroHasMeaning names --%s, which is no flag", name)
		}
	}

	// Every leaf field of Config is the target of exactly one flag.
	fields := map[uintptr]string{}
	leafFields(reflect.ValueOf(&c).Elem(), "", fields)
	bound := map[uintptr]string{}
	fs.VisitAll(func(f *flag.Flag) {
		p := reflect.ValueOf(f.Value).Pointer()
		if other, dup := bound[p]; dup {
			t.Errorf("--%s and --%s set the same field %s", other, f.Name, fields[p])
		}
		bound[p] = f.Name
	})
	for p, name := range fields {
		if _, ok := bound[p]; !ok {
			t.Errorf("Config.%s has no flag", name)
		}
	}
}

// leafFields records the address of every field of the struct v that is
// not itself a struct, by its dotted name.
func leafFields(v reflect.Value, prefix string, out map[uintptr]string) {
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct {
			leafFields(f, name+".", out)
			continue
		}
		out[f.Addr().Pointer()] = name
	}
}

var servingRE = regexp.MustCompile(`msg="serving ([^"]+)" addr=(\S+)`)

// serveInProcess runs `intentpdp serve` on loopback ports with args and
// returns the address of each listener by the name it logs ("gRPC",
// "metrics", "admin API", "AuthZEN and forward-auth over HTTP") and the
// log; it stops at cleanup.
func serveInProcess(t *testing.T, args ...string) (map[string]string, *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &logBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, slices.Concat([]string{"serve"}, loopbackFlags, args), log, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, log)
		}
	})
	addrs := map[string]string{}
	pollUntil(t, "serving gRPC", func() bool {
		for _, m := range servingRE.FindAllStringSubmatch(log.String(), -1) {
			addrs[m[1]] = m[2]
		}
		return addrs["gRPC"] != ""
	})
	return addrs, log
}

const httpAddrName = "AuthZEN and forward-auth over HTTP"

func TestEmptyHTTPListenIsOff(t *testing.T) {
	t.Parallel()
	addrs, log := serveInProcess(t, "--http-listen", "")
	if a, ok := addrs[httpAddrName]; ok {
		t.Fatalf("HTTP listener on %s despite --http-listen \"\"", a)
	}
	if !strings.Contains(log.String(), "HTTP listener off") {
		t.Errorf("log does not say the HTTP listener is off:\n%s", log)
	}
}

func TestServeValidatesListenerFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ flag, value, want string }{
		{"listen", "", "gRPC listen address is required"},
		{"authzen-base-url", "pdp.example.org", "authzen-base-url"},
		{"authzen-base-url", "https://pdp.example.org/?x=1", "authzen-base-url"},
		{"authzen-base-url", "ftp://pdp.example.org", "authzen-base-url"},
	} {
		err := serve(context.Background(), append(slices.Clone(loopbackFlags), "--"+tt.flag, tt.value), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve --%s %q = %v, want an error containing %q", tt.flag, tt.value, err, tt.want)
		}
	}
}

// TestListenerCollisionNamesFlag: a second PDP on a host whose side
// listener's port is taken stops with an error naming the flag to change.
func TestListenerCollisionNamesFlag(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, name := range []string{"listen", "http-listen", "admin-listen", "metrics-listen"} {
		t.Run(name, func(t *testing.T) {
			err := serve(context.Background(), append(slices.Clone(loopbackFlags), "--"+name, taken.Addr().String()), io.Discard)
			if err == nil || !strings.Contains(err.Error(), "--"+name+" "+taken.Addr().String()) {
				t.Fatalf("serve = %v, want an error naming --%s", err, name)
			}
			if optional := name != "listen"; optional != strings.Contains(err.Error(), `""`) {
				t.Errorf("serve = %v: an optional listener's error says how to turn it off, the gRPC one's does not", err)
			}
		})
	}
}

// readUntilClosed reads conn until the server closes it, failing if that
// takes longer than a bound far above the configured timeouts.
func readUntilClosed(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 30s (read %q)", got)
	}
	return got
}

// TestSlowHTTPClientsDisconnected: a client that sends headers and then
// trickles or withholds the body, or idles after a request, is
// disconnected by the configured timeouts.
func TestSlowHTTPClientsDisconnected(t *testing.T) {
	t.Parallel()
	addrs, _ := serveInProcess(t, "--http-read-timeout", "300ms", "--http-idle-timeout", "300ms")
	httpAddr := addrs[httpAddrName]
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	t.Run("body never finished", func(t *testing.T) {
		t.Parallel()
		conn := dial(t)
		if _, err := io.WriteString(conn, "POST /access/v1/evaluation HTTP/1.1\r\nHost: pdp\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"subject\": "); err != nil {
			t.Fatal(err)
		}
		readUntilClosed(t, conn)
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		t.Parallel()
		conn := dial(t)
		if _, err := io.WriteString(conn, "GET /.well-known/authzen-configuration HTTP/1.1\r\nHost: pdp\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := readUntilClosed(t, conn); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Errorf("response %q, want 200 then a close", got)
		}
	})
}

// TestGRPCStreamCap: a client that ignores the advertised stream limit
// and opens one stream more on a connection has that stream refused.
func TestGRPCStreamCap(t *testing.T) {
	t.Parallel()
	addrs, _ := serveInProcess(t, "--grpc-max-concurrent-streams", "2")
	conn, err := net.Dial("tcp", addrs["gRPC"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var headers bytes.Buffer
	enc := hpack.NewEncoder(&headers)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "pdp"},
		{":path", pdpv1.AuthorizationService_Authorize_FullMethodName},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	// Three calls whose request messages never come: each holds its
	// stream open on the server.
	for _, id := range []uint32{1, 3, 5} {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headers.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	// The server handles frames in order, so its answer to this ping
	// comes after its answer to every HEADERS above.
	if err := fr.WritePing(false, [8]byte{'c', 'a', 'p'}); err != nil {
		t.Fatal(err)
	}
	var advertised uint32
	refused := map[uint32]http2.ErrCode{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (refused so far %v)", err, refused)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				advertised = v
			}
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.RSTStreamFrame:
			refused[f.StreamID] = f.ErrCode
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.PingFrame:
			if f.IsAck() {
				if advertised != 2 {
					t.Errorf("server advertises %d concurrent streams, want 2", advertised)
				}
				if len(refused) != 1 || refused[5] != http2.ErrCodeRefusedStream {
					t.Errorf("streams reset %v, want only stream 5, refused", refused)
				}
				return
			}
		}
	}
}
