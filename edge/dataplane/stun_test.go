package dataplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/natprobe/natprobetest"
)

// engineWithoutTUN is an engine whose packet paths and sockets run but
// that has no TUN device (nothing here reaches the TUN): enough for STUN
// and endpoint learning, without root.
func engineWithoutTUN(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil)), tunCfg: cfg.TUN, routesUp: map[netip.Prefix]bool{}, stopped: make(chan struct{})}
	e.tunMTU.Store(1390)
	e.snap.Store(&snapshot{tunnels: map[string]*tunnel{}, byVNI: map[uint32]*tunnel{}, sites: map[string]*site{}, routes: &routeTable{}, wans: map[wanKey]*wanSock{}})
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func stunMessage(t *testing.T, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestIsSTUN(t *testing.T) {
	_, _, _, peer := testPair(t, gcmSA(0x700, 7))
	vxlan := sealFrom(t, peer, 5, innerPacket(100))
	req := stunMessage(t, stun.TransactionID, stun.BindingRequest)
	resp := stunMessage(t, stun.TransactionID, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(192, 0, 2, 9), Port: 4789})
	// A VxLAN frame whose VNI bytes equal the cookie's first three:
	// reserved byte 7 is still zero.
	tricky := clone(vxlan)
	copy(tricky[4:7], []byte{0x21, 0x12, 0xA4})
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"binding request", req, true},
		{"binding response", resp, true},
		{"VxLAN frame", vxlan, false},
		{"VxLAN frame with cookie-like VNI", tricky, false},
		{"short", resp[:19], false},
		{"top bits set (ChannelData, RTP)", append([]byte{0x40}, resp[1:]...), false},
		{"empty", nil, false},
	} {
		if got := isSTUN(tc.b); got != tc.want {
			t.Errorf("%s: isSTUN = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSTUNTransactionMatching(t *testing.T) {
	server := netip.MustParseAddrPort("198.51.100.7:3478")
	mapped := &stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 5), Port: 40000}
	tests := []struct {
		name       string
		changePort bool
		id         func([12]byte) [12]byte
		class      stun.MessageType
		from       netip.AddrPort
		matched    bool
		wantErr    bool
	}{
		{"answer", false, same, stun.BindingSuccess, server, true, false},
		{"error answer", false, same, stun.BindingError, server, true, true},
		{"other transaction", false, other, stun.BindingSuccess, server, false, false},
		{"from another address", false, same, stun.BindingSuccess, netip.MustParseAddrPort("198.51.100.8:3478"), false, false},
		{"from the other port without change-port", false, same, stun.BindingSuccess, netip.MustParseAddrPort("198.51.100.7:3479"), false, false},
		{"from the other port after change-port", true, same, stun.BindingSuccess, netip.MustParseAddrPort("198.51.100.7:3479"), true, false},
		{"change-port ignored by the server", true, same, stun.BindingSuccess, server, true, true},
		{"a request, not an answer", false, same, stun.BindingRequest, server, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tab stunTable
			id := stun.NewTransactionID()
			tx := &stunTx{server: server, changePort: tc.changePort, ch: make(chan stunReply, 1)}
			tab.add(id, tx)
			setters := []stun.Setter{stun.NewTransactionIDSetter(tc.id(id)), tc.class}
			if tc.class == stun.BindingSuccess {
				setters = append(setters, mapped)
			} else if tc.class == stun.BindingError {
				setters = append(setters, stun.CodeBadRequest)
			}
			msg := stunMessage(t, setters...)
			if !isSTUN(msg) {
				t.Fatal("not recognised as STUN")
			}
			tab.handle(msg, tc.from)
			select {
			case r := <-tx.ch:
				if !tc.matched {
					t.Fatalf("matched: %+v", r)
				}
				if (r.err != nil) != tc.wantErr {
					t.Fatalf("error %v, want error %v", r.err, tc.wantErr)
				}
				if !tc.wantErr && (r.res.Mapped != netip.MustParseAddrPort("203.0.113.5:40000") || r.res.From != tc.from) {
					t.Fatalf("result %+v", r.res)
				}
				if c := tab.counters(); c.Answers != 1 || c.Stray != 0 {
					t.Fatalf("counters %+v", c)
				}
			default:
				if tc.matched {
					t.Fatal("answer not matched")
				}
				if c := tab.counters(); c.Stray != 1 {
					t.Fatalf("stray answer not counted: %+v", c)
				}
			}
		})
	}
}

func same(id [12]byte) [12]byte { return id }
func other(id [12]byte) [12]byte {
	id[0] ^= 1
	return id
}

// TestSTUNOnTunnelSocket asks a STUN server from a WAN socket that has no
// tunnel (Config.WANs) and then from one that carries a tunnel: the
// answers come back through the receive loop's demultiplexer.
func TestSTUNOnTunnelSocket(t *testing.T) {
	srv, err := natprobetest.Listen(netip.MustParseAddr("127.0.0.1"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	port := freeUDPPort(t)
	e := engineWithoutTUN(t, Config{UDPPort: port, WANs: []WANConfig{{Address: lo}, {Interface: "h7bnone0"}}})
	st := e.Status()
	if len(st.WANs) != 1 || st.WANs[0].Local != netip.AddrPortFrom(lo, port) || st.WANs[0].Tunnels != 0 {
		t.Fatalf("WAN sockets %+v", st.WANs)
	}
	if len(st.WANErrors) != 1 {
		t.Fatalf("the WAN on a missing interface is not reported: %v", st.WANErrors)
	}
	ctx := context.Background()
	for _, change := range []bool{false, true} {
		r, err := e.STUN(ctx, "127.0.0.1", srv.Addrs()[0], change)
		if err != nil {
			t.Fatalf("STUN (change port %v): %v", change, err)
		}
		want := srv.Addrs()[0]
		if change {
			want = srv.Addrs()[1]
		}
		if r.Mapped != netip.AddrPortFrom(lo, port) || r.From != want || r.Local != r.Mapped {
			t.Fatalf("change port %v: result %+v, want mapped %s:%d from %s", change, r, lo, port, want)
		}
	}
	// A tunnel on the same WAN shares the socket; STUN still works, and
	// the tunnel's probes (VxLAN) take the tunnel path meanwhile.
	tc := tunnelConfig("t1", 5, gcmSA(0x900, 9), gcmSA(0x901, 9))
	tc.WANInterface, tc.WANAddress, tc.Remote = "", lo, srv.Addrs()[1]
	if err := e.Apply(Config{UDPPort: port, WANs: []WANConfig{{Address: lo}}, Tunnels: []TunnelConfig{tc}}); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); len(st.WANs) != 1 || st.WANs[0].Tunnels != 1 {
		t.Fatalf("WAN sockets %+v", st.WANs)
	}
	if _, err := e.STUN(ctx, "127.0.0.1", srv.Addrs()[1], false); err != nil {
		t.Fatal(err)
	}
	// Nobody answers on a port without a server: bounded failure.
	dead := netip.AddrPortFrom(lo, freeUDPPort(t))
	if _, err := e.STUN(ctx, "127.0.0.1", dead, false); !errors.Is(err, ErrSTUNTimeout) {
		t.Fatalf("STUN to a silent port: %v", err)
	}
	if _, err := e.STUN(ctx, "eth-none", srv.Addrs()[0], false); err == nil {
		t.Fatal("STUN from an unknown WAN succeeded")
	}
	if c := e.Status().STUN; c.Answers != 3 || c.Requests < uint64(3+len(stunRetransmit)) {
		t.Fatalf("STUN counters %+v", c)
	}
}

func freeUDPPort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestLearnedEndpoint: the remote moves to the source of a packet only
// when it authenticated and passed the replay check; a new configured
// endpoint wins again.
func TestLearnedEndpoint(t *testing.T) {
	sa := gcmSA(0x700, 7)
	snap, w, tn, peer := testPair(t, sa)
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reply := make([]byte, 2048)
	conf := netip.MustParseAddrPort("192.0.2.2:4789")
	nat1 := netip.MustParseAddrPort("203.0.113.9:61001")
	attacker := netip.MustParseAddrPort("198.51.100.66:4789")
	remote := func() (netip.AddrPort, bool) { r := tn.remote.Load(); return r.ap, r.learned }

	good1 := sealFrom(t, peer, 5, innerPacket(100))
	good2 := sealFrom(t, peer, 5, innerPacket(100))
	forger, _ := esp.New(gcmSA(0x700, 8)) // right SPI, wrong key
	forger.SetSentSeq(1000)
	forged := sealFrom(t, forger, 5, innerPacket(100))
	garbage := clone(good2)
	garbage[len(garbage)-1] ^= 0xff // ICV broken

	steps := []struct {
		name        string
		pkt         []byte
		from        netip.AddrPort
		wantRemote  netip.AddrPort
		wantLearned bool
		wantLearns  uint64
	}{
		{"authenticated from the configured endpoint", clone(good1), conf, conf, false, 0},
		{"forged from another source", forged, attacker, conf, false, 0},
		{"tampered from another source", garbage, attacker, conf, false, 0},
		{"replayed from another source", clone(good1), attacker, conf, false, 0},
		{"authenticated from the NAT's real mapping", clone(good2), nat1, nat1, true, 1},
		{"forged after learning", forged, attacker, nat1, true, 1},
		{"authenticated from the configured endpoint again", sealFrom(t, peer, 5, innerPacket(100)), conf, conf, false, 2},
	}
	for _, s := range steps {
		e.decapOne(snap, w, s.pkt, s.from, reply, time.Now())
		ap, learned := remote()
		if ap != s.wantRemote || learned != s.wantLearned || tn.learns.Load() != s.wantLearns {
			t.Fatalf("%s: remote %s learned %v learns %d, want %s %v %d", s.name, ap, learned, tn.learns.Load(), s.wantRemote, s.wantLearned, s.wantLearns)
		}
	}
	if d := dropMap(&tn.counters); d["auth"] != 3 || d["replay"] != 1 {
		t.Fatalf("drops %v", d)
	}
	// The sockets use the learned address.
	e.decapOne(snap, w, sealFrom(t, peer, 5, innerPacket(100)), nat1, reply, time.Now())
	if a := tn.remote.Load().addr; a.String() != nat1.String() {
		t.Fatalf("send address %s, want %s", a, nat1)
	}
}

// TestConfiguredEndpointWins: re-applying the same configuration keeps a
// learned endpoint; a new configured endpoint replaces it.
func TestConfiguredEndpointWins(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	tc := tunnelConfig("t1", 5, gcmSA(0x900, 9), gcmSA(0x700, 7))
	tc.WANInterface, tc.WANAddress = "", lo
	cfg := Config{UDPPort: freeUDPPort(t), ProbeInterval: time.Hour, Tunnels: []TunnelConfig{tc}}
	e := engineWithoutTUN(t, cfg)
	peer, _ := esp.New(gcmSA(0x700, 7))
	snap := e.snap.Load()
	tn := snap.tunnels["t1"]
	learned := netip.MustParseAddrPort("203.0.113.9:61001")
	e.decapOne(snap, tn.wan, sealFrom(t, peer, 5, innerPacket(100)), learned, make([]byte, 2048), time.Now())
	check := func(stage string, want netip.AddrPort, wantLearned bool) {
		t.Helper()
		ts, _ := tunnelStatus(e, "t1")
		if ts.Remote != want.String() || ts.Learned != wantLearned || ts.Configured != e.Config().Tunnels[0].Remote.String() {
			t.Fatalf("%s: status remote %s learned %v configured %s", stage, ts.Remote, ts.Learned, ts.Configured)
		}
	}
	check("after an authenticated packet", learned, true)
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`trellis_dataplane_tunnel_endpoint_learned{site="B",tunnel="t1"} 1`,
		`trellis_dataplane_tunnel_endpoint_learns_total{site="B",tunnel="t1"} 1`, `trellis_dataplane_stun_messages_total{kind="stray"} 0`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := e.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	check("same configuration again", learned, true)
	tc.Remote = netip.MustParseAddrPort("192.0.2.99:4789")
	cfg.Tunnels = []TunnelConfig{tc}
	if err := e.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	check("new configured endpoint", tc.Remote, false)
	if ts, _ := tunnelStatus(e, "t1"); ts.Learns != 1 {
		t.Fatalf("learns %d", ts.Learns)
	}
}

// FuzzSTUN feeds arbitrary datagrams to the demultiplexer and the STUN
// table (with a request pending): nothing panics, and only a well-formed
// answer from the server completes the request.
func FuzzSTUN(f *testing.F) {
	id := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	ok, _ := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 5), Port: 4789})
	f.Add(ok.Raw)
	f.Add(ok.Raw[:20])
	req, _ := bindingRequest(id, true)
	f.Add(req)
	f.Add([]byte{0x08, 0, 0, 0, 0x21, 0x12, 0xA4, 0x42})
	server := netip.MustParseAddrPort("198.51.100.7:3478")
	f.Fuzz(func(t *testing.T, b []byte) {
		if !isSTUN(b) {
			return
		}
		var tab stunTable
		tx := &stunTx{server: server, ch: make(chan stunReply, 1)}
		tab.add(id, tx)
		tab.handle(b, server)
		select {
		case r := <-tx.ch:
			if r.err == nil && !r.res.Mapped.IsValid() {
				t.Fatalf("answer without a mapped address: %+v", r.res)
			}
		default:
		}
	})
}
