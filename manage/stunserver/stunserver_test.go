package stunserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// start runs a server on two loopback ports for the test.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// udp opens a loopback socket with a read deadline well beyond any
// loopback round trip (it only bounds a test that would otherwise hang).
func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func bindingRequest(t *testing.T, extra ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type changeRequest uint32

func (c changeRequest) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChangeRequest, []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
	return nil
}

// exchange sends raw to the server's port i and returns the answer and
// where it came from.
func exchange(t *testing.T, c *net.UDPConn, to netip.AddrPort, raw []byte) (*stun.Message, netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(raw, to); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, c)
}

func readAnswer(t *testing.T, c *net.UDPConn) (*stun.Message, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("answer does not decode: %v", err)
	}
	return m, from
}

func TestPionClient(t *testing.T) {
	s := start(t, Config{})
	c, err := stun.Dial("udp4", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got stun.XORMappedAddress
	var software stun.Software
	var cbErr error
	if err := c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint), func(e stun.Event) {
		if e.Error != nil {
			cbErr = e.Error
			return
		}
		if e.Message.Type != stun.BindingSuccess {
			cbErr = errors.New("not a binding success: " + e.Message.Type.String())
			return
		}
		cbErr = errors.Join(got.GetFrom(e.Message), software.GetFrom(e.Message), stun.Fingerprint.Check(e.Message))
	}); err != nil {
		t.Fatal(err)
	}
	if cbErr != nil {
		t.Fatal(cbErr)
	}
	// The pion client's socket is on 127.0.0.1 (dialed to loopback); its
	// port is what the server must have seen.
	if !got.IP.Equal(net.IPv4(127, 0, 0, 1)) || got.Port == 0 {
		t.Fatalf("mapped %s", got)
	}
	if software.String() != DefaultSoftware {
		t.Fatalf("software %q", software)
	}
}

func TestAnswers(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := start(t, Config{Registerer: reg})
	c := udp(t)
	me := c.LocalAddr().(*net.UDPAddr).AddrPort()
	a0, a1 := s.Addrs()[0], s.Addrs()[1]
	if a1.Port() != a0.Port()+1 {
		t.Fatalf("ports %d and %d are not adjacent", a0.Port(), a1.Port())
	}
	for _, tc := range []struct {
		name     string
		to       netip.AddrPort
		extra    []stun.Setter
		wantFrom netip.AddrPort
		wantType stun.MessageType
	}{
		{"plain on the first port", a0, nil, a0, stun.BindingSuccess},
		{"plain on the second port", a1, nil, a1, stun.BindingSuccess},
		{"change port from the first", a0, []stun.Setter{changeRequest(ChangePort)}, a1, stun.BindingSuccess},
		{"change port from the second", a1, []stun.Setter{changeRequest(ChangePort)}, a0, stun.BindingSuccess},
		{"no change flags", a0, []stun.Setter{changeRequest(0)}, a0, stun.BindingSuccess},
		{"with fingerprint", a0, []stun.Setter{stun.NewSoftware("edge"), stun.Fingerprint}, a0, stun.BindingSuccess},
		{"change IP is refused", a0, []stun.Setter{changeRequest(ChangeIP | ChangePort)}, a0, stun.NewType(stun.MethodBinding, stun.ClassErrorResponse)},
		{"unknown required attribute", a0, []stun.Setter{rawAttr{0x0777, []byte{1, 2, 3, 4}}}, a0, stun.NewType(stun.MethodBinding, stun.ClassErrorResponse)},
		{"unknown optional attribute is fine", a0, []stun.Setter{rawAttr{0x8777, []byte{1, 2, 3, 4}}}, a0, stun.BindingSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := bindingRequest(t, tc.extra...)
			res, from := exchange(t, c, tc.to, req.Raw)
			if from != tc.wantFrom {
				t.Fatalf("answered from %s, want %s", from, tc.wantFrom)
			}
			if res.TransactionID != req.TransactionID {
				t.Fatal("transaction id not echoed")
			}
			if res.Type != tc.wantType {
				t.Fatalf("type %s, want %s", res.Type, tc.wantType)
			}
			if err := stun.Fingerprint.Check(res); err != nil {
				t.Fatalf("fingerprint: %v", err)
			}
			if tc.wantType != stun.BindingSuccess {
				var code stun.ErrorCodeAttribute
				var unknown stun.UnknownAttributes
				if err := errors.Join(code.GetFrom(res), unknown.GetFrom(res)); err != nil || code.Code != stun.CodeUnknownAttribute || len(unknown) != 1 {
					t.Fatalf("error answer %v %v %v", code, unknown, err)
				}
				return
			}
			var xor stun.XORMappedAddress
			var mapped stun.MappedAddress
			var origin stun.ResponseOrigin
			if err := errors.Join(xor.GetFrom(res), mapped.GetFrom(res), origin.GetFrom(res)); err != nil {
				t.Fatal(err)
			}
			if xor.String() != me.String() || mapped.String() != me.String() {
				t.Fatalf("mapped %s / %s, want %s", xor, mapped, me)
			}
			if origin.String() != tc.wantFrom.String() {
				t.Fatalf("response origin %s, want %s", origin, tc.wantFrom)
			}
		})
	}
	if n := value(s.metrics.answers.WithLabelValues(ResultChangedPort)); n != 2 {
		t.Fatalf("changed_port answers %v, want 2", n)
	}
}

type rawAttr struct {
	typ stun.AttrType
	val []byte
}

func (r rawAttr) AddTo(m *stun.Message) error { m.Add(r.typ, r.val); return nil }

// TestIgnoresBadInput sends garbage before a valid request: the only
// answer is the valid request's, and each drop is counted.
func TestIgnoresBadInput(t *testing.T) {
	s := start(t, Config{})
	c := udp(t)
	valid := bindingRequest(t)
	resp, err := stun.Build(stun.TransactionID, stun.BindingSuccess)
	if err != nil {
		t.Fatal(err)
	}
	indication, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication))
	allocate, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest))
	badFP := bindingRequest(t, stun.Fingerprint)
	badFP.Raw[len(badFP.Raw)-1] ^= 0xff
	trailing := append(append([]byte(nil), valid.Raw...), 0, 0, 0, 0)
	truncatedAttr := append([]byte(nil), valid.Raw...)
	truncatedAttr[3] = 8 // claims an attribute that is not there
	shortChange := bindingRequest(t, rawAttr{stun.AttrChangeRequest, []byte{0, 2}})
	for name, pkt := range map[string][]byte{
		"empty":            {},
		"text":             []byte("GET / HTTP/1.1\r\n\r\n"),
		"vxlan":            make([]byte, 64),
		"truncated header": valid.Raw[:12],
		"trailing bytes":   trailing,
		"attr past end":    truncatedAttr,
		"response":         resp.Raw,
		"indication":       indication.Raw,
		"other method":     allocate.Raw,
		"bad fingerprint":  badFP.Raw,
		"short change":     shortChange.Raw,
		"oversize":         make([]byte, 2000),
	} {
		if _, err := c.WriteToUDPAddrPort(pkt, s.Addrs()[0]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	res, _ := exchange(t, c, s.Addrs()[0], valid.Raw)
	if res.TransactionID != valid.TransactionID {
		t.Fatal("a bad datagram was answered")
	}
	var dropped float64
	for _, r := range []string{DropNotSTUN, DropMalformed, DropNotRequest, DropUnknownMethod, DropBadFingerprint, "oversize"} {
		dropped += value(s.metrics.drops.WithLabelValues(r))
	}
	if dropped != 12 {
		t.Fatalf("dropped %v, want 12", dropped)
	}
}

func TestRateLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	s := start(t, Config{Rate: 1, Burst: 3, Now: func() time.Time { return now }})
	c := udp(t)
	for i := 0; i < 3; i++ {
		exchange(t, c, s.Addrs()[0], bindingRequest(t).Raw)
	}
	// The fourth is dropped (the clock does not move). Datagrams on one
	// socket are handled in order: once another source (127.0.0.2) is
	// answered on the same port, the fourth has been handled.
	if _, err := c.WriteToUDPAddrPort(bindingRequest(t).Raw, s.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	defer other.Close()
	exchange(t, other, s.Addrs()[0], bindingRequest(t).Raw)
	if n := value(s.metrics.drops.WithLabelValues("rate_limited")); n != 1 {
		t.Fatalf("rate limited %v, want 1", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 1500)); err == nil {
		t.Fatal("the fourth request was answered")
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(0, 0)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	l := newLimiter(2, 2, 2)
	steps := []struct {
		addr netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true}, {a, 0, true}, {a, 0, false}, // burst 2
		{a, 500 * time.Millisecond, true}, // 2/s: one token back
		{a, 500 * time.Millisecond, false},
		{b, 500 * time.Millisecond, true},
		{c, 500 * time.Millisecond, false}, // two sources tracked, none refilled: refused
		{c, 2 * time.Second, true},         // a and b refilled: forgotten, c admitted
	}
	for i, s := range steps {
		if got := l.allow(s.addr, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d (%s at %v): %v, want %v", i, s.addr, s.at, got, s.want)
		}
		if l.size() > 2 {
			t.Fatalf("step %d: %d sources tracked, bound 2", i, l.size())
		}
	}
}

func TestListenValidation(t *testing.T) {
	for _, l := range []string{"3478", "host", ":x", ":65535", ":-1"} {
		if _, err := New(Config{Listen: l}); err == nil {
			t.Errorf("%q accepted", l)
		}
	}
	// A taken second port is an error naming it.
	s := start(t, Config{})
	if _, err := New(Config{Listen: netip.AddrPortFrom(s.Addrs()[0].Addr(), s.Addrs()[0].Port()-1).String()}); err == nil ||
		!strings.Contains(err.Error(), "second port") {
		t.Errorf("second port taken: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The ports are free again.
	s2, err := New(Config{Listen: s.Addrs()[0].String()})
	if err != nil {
		t.Fatalf("ports not released: %v", err)
	}
	s2.Close()
}

func FuzzAnswer(f *testing.F) {
	m, _ := stun.Build(stun.TransactionID, stun.BindingRequest, changeRequest(ChangePort), stun.Fingerprint)
	f.Add(m.Raw)
	m2, _ := stun.Build(stun.TransactionID, stun.BindingRequest, rawAttr{0x0777, nil})
	f.Add(m2.Raw)
	f.Add([]byte("not stun"))
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	local := netip.MustParseAddrPort("192.0.2.1:3478")
	other := netip.MustParseAddrPort("192.0.2.1:3479")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		res, _, outcome := Answer(pkt, from, local, other, stun.NewSoftware("fuzz"))
		if res == nil {
			return
		}
		if outcome != ResultBinding && outcome != ResultChangedPort && outcome != ResultError {
			t.Fatalf("answer with outcome %q", outcome)
		}
		var req, ans stun.Message
		req.Raw, ans.Raw = pkt, res
		if err := errors.Join(req.Decode(), ans.Decode()); err != nil {
			t.Fatalf("answered something that does not decode: %v", err)
		}
		if req.TransactionID != ans.TransactionID || req.Type != stun.BindingRequest {
			t.Fatal("answer does not match a binding request")
		}
		if outcome != ResultError {
			var x stun.XORMappedAddress
			if err := x.GetFrom(&ans); err != nil || x.String() != from.String() {
				t.Fatalf("mapped %s %v", x, err)
			}
		}
	})
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// BenchmarkAnswer is the server's work per request, without the sockets.
func BenchmarkAnswer(b *testing.B) {
	m, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	local := netip.MustParseAddrPort("192.0.2.1:3478")
	other := netip.MustParseAddrPort("192.0.2.1:3479")
	sw := stun.NewSoftware(DefaultSoftware)
	b.ReportAllocs()
	for b.Loop() {
		if res, _, _ := Answer(m.Raw, from, local, other, sw); res == nil {
			b.Fatal("no answer")
		}
	}
}

// BenchmarkRoundTrip is one request and its answer over loopback.
func BenchmarkRoundTrip(b *testing.B) {
	s, err := New(Config{Listen: "127.0.0.1:0", Rate: 1e9, Burst: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	buf := make([]byte, 1500)
	for b.Loop() {
		if _, err := c.WriteToUDPAddrPort(m.Raw, s.Addrs()[0]); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAnswersFromTheAddressAsked: listening on every address, an answer
// (also the change-port one) leaves from the address the request was sent
// to, not the one routing would pick.
func TestAnswersFromTheAddressAsked(t *testing.T) {
	s := start(t, Config{Listen: "0.0.0.0:0"})
	c := udp(t) // 127.0.0.1
	target := netip.MustParseAddr("127.0.0.2")
	for i, change := range []bool{false, true} {
		to := netip.AddrPortFrom(target, s.Addrs()[i].Port())
		var extra []stun.Setter
		want := to
		if change {
			extra = append(extra, changeRequest(ChangePort))
			want = netip.AddrPortFrom(target, s.Addrs()[1-i].Port())
		}
		res, from := exchange(t, c, to, bindingRequest(t, extra...).Raw)
		if from != want {
			t.Fatalf("change %v: answered from %s, want %s", change, from, want)
		}
		var origin stun.ResponseOrigin
		if err := origin.GetFrom(res); err != nil || origin.String() != want.String() {
			t.Fatalf("change %v: response origin %s (%v), want %s", change, origin, err, want)
		}
	}
}
