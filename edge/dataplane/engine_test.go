package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
)

func gcmSA(spi uint32, key byte) esp.Config {
	return esp.Config{SPI: spi, Transform: esp.AESGCM128, ESN: true, EncKey: bytes.Repeat([]byte{key}, 20)}
}

func cbcSA(spi uint32, key byte) esp.Config {
	return esp.Config{SPI: spi, Transform: esp.AESCBC128SHA256128, ESN: true, EncKey: bytes.Repeat([]byte{key}, 16), AuthKey: bytes.Repeat([]byte{key}, 32)}
}

func tunnelConfig(name string, vni uint32, out, in esp.Config) TunnelConfig {
	return TunnelConfig{Name: name, Site: "B", VNI: vni, WANInterface: "wan0", WANAddress: netip.MustParseAddr("192.0.2.1"),
		Remote: netip.MustParseAddrPort("192.0.2.2:4789"), Local: netip.MustParseAddr("10.100.0.0"), Peer: netip.MustParseAddr("10.100.0.1"),
		Outbound: out, Inbound: in}
}

// testPair builds the receiving snapshot of edge A and an outbound SA of
// edge B that seals frames for it, without TUN or sockets.
func testPair(t testing.TB, sa esp.Config) (*snapshot, *wanSock, *tunnel, *esp.SA) {
	t.Helper()
	w := &wanSock{key: wanKey{iface: "wan0"}}
	tc := tunnelConfig("t1", 5, gcmSA(0x900, 9), sa)
	sas, err := rollSAs(nil, tc, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tn := newTunnel(1, tc, w, sas, 1500, 1500)
	snap := &snapshot{tunnels: map[string]*tunnel{"t1": tn}, byVNI: map[uint32]*tunnel{5: tn}}
	peer, err := esp.New(sa)
	if err != nil {
		t.Fatal(err)
	}
	return snap, w, tn, peer
}

func innerPacket(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[9] = 17
	copy(p[12:], []byte{172, 16, 2, 2})
	copy(p[16:], []byte{172, 16, 1, 2})
	return p
}

// sealFrom seals an inner packet as edge B would send it to edge A.
func sealFrom(t testing.TB, peer *esp.SA, vni uint32, inner []byte) []byte {
	t.Helper()
	ep := frame.NewEndpoint(vni, [4]byte{10, 100, 0, 1}, [4]byte{10, 100, 0, 0})
	buf := make([]byte, frame.MaxHeadroom+len(inner)+frame.MaxTailroom)
	copy(buf[frame.MaxHeadroom:], inner)
	f, err := frame.Encap(buf, frame.MaxHeadroom, len(inner), &ep, peer)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), f...)
}

func TestDecapDrops(t *testing.T) {
	for _, mk := range []func(uint32, byte) esp.Config{gcmSA, cbcSA} {
		cfg := mk(0x700, 7)
		snap, w, _, peer := testPair(t, cfg)
		good := sealFrom(t, peer, 5, innerPacket(100))
		otherWAN := &wanSock{}
		wrongSPI, _ := esp.New(mk(0x701, 7))
		wrongKey, _ := esp.New(mk(0x700, 8))
		wrongKey.SetSentSeq(100) // fresh numbers, so that only the key is wrong
		tests := []struct {
			name string
			b    []byte
			w    *wanSock
			want DropReason
			tun  bool // charged to the tunnel
		}{
			{"good", clone(good), w, -1, true},
			{"replayed", clone(good), w, DropReplay, true},
			{"wrong SPI", sealFrom(t, wrongSPI, 5, innerPacket(100)), w, DropNoSA, true},
			{"wrong key", sealFrom(t, wrongKey, 5, innerPacket(100)), w, DropAuth, true},
			{"unknown VNI", sealFrom(t, peer, 6, innerPacket(100)), w, DropNoSA, false},
			{"wrong WAN", sealFrom(t, peer, 5, innerPacket(100)), otherWAN, DropMalformed, true},
			{"tampered", func() []byte { b := sealFrom(t, peer, 5, innerPacket(100)); b[70] ^= 1; return b }(), w, DropAuth, true},
			{"truncated", sealFrom(t, peer, 5, innerPacket(100))[:60], w, DropMalformed, false},
			{"inner length lies", func() []byte {
				p := innerPacket(100)
				binary.BigEndian.PutUint16(p[2:], 90)
				return sealFrom(t, peer, 5, p)
			}(), w, DropMalformed, true},
		}
		for _, tt := range tests {
			tn, inner, reason := decap(snap, tt.w, tt.b)
			if reason != tt.want {
				t.Errorf("%v %s: reason %v, want %v", cfg.Transform, tt.name, reason, tt.want)
				continue
			}
			if (tn != nil) != tt.tun {
				t.Errorf("%v %s: tunnel %v, want charged to tunnel %v", cfg.Transform, tt.name, tn, tt.tun)
			}
			if tt.want < 0 && !bytes.Equal(inner, innerPacket(100)) {
				t.Errorf("%v %s: inner packet differs", cfg.Transform, tt.name)
			}
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func FuzzDecap(f *testing.F) {
	snap, w, _, peer := testPair(f, gcmSA(0x700, 7))
	for _, n := range []int{20, 100, 1300} {
		f.Add(sealFrom(f, peer, 5, innerPacket(n)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tn, inner, reason := decap(snap, w, b)
		if reason < 0 && (tn == nil || !validInner(inner)) {
			t.Fatalf("accepted an invalid packet")
		}
	})
}

func TestSARollover(t *testing.T) {
	now := time.Now()
	tc := tunnelConfig("t1", 5, gcmSA(0x100, 1), gcmSA(0x200, 2))
	s1, err := rollSAs(nil, tc, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Unchanged config keeps the very same SA objects (state preserved).
	s2, _ := rollSAs(s1, tc, now, time.Minute)
	if s2.out != s1.out || s2.in[0].sa != s1.in[0].sa || len(s2.in) != 1 {
		t.Fatal("unchanged SAs were replaced")
	}
	// New inbound SA: the old one stays for the grace period.
	tc.Inbound = gcmSA(0x201, 3)
	s3, _ := rollSAs(s2, tc, now, time.Minute)
	if s3.out != s1.out || len(s3.in) != 2 || s3.lookup(0x201) == nil || s3.lookup(0x200) != s1.in[0].sa {
		t.Fatalf("rollover set wrong: %+v", s3.in)
	}
	tn := &tunnel{}
	tn.sas.Store(s3)
	tn.pruneSAs(now.Add(30 * time.Second))
	if tn.sas.Load().lookup(0x200) == nil {
		t.Fatal("old inbound SA pruned before its grace period ended")
	}
	tn.pruneSAs(now.Add(61 * time.Second))
	if tn.sas.Load().lookup(0x200) != nil || tn.sas.Load().lookup(0x201) == nil {
		t.Fatal("old inbound SA not pruned after grace, or current one lost")
	}
	// A second rekey inside the grace period keeps both older SAs.
	tc.Inbound = gcmSA(0x202, 4)
	s4, _ := rollSAs(s3, tc, now.Add(time.Second), time.Minute)
	if len(s4.in) != 3 {
		t.Fatalf("want current + 2 old inbound SAs, got %d", len(s4.in))
	}
	// New outbound SA replaces the old one at once.
	tc.Outbound = cbcSA(0x101, 5)
	s5, _ := rollSAs(s4, tc, now, time.Minute)
	if s5.out == s4.out || s5.out.SPI() != 0x101 {
		t.Fatal("outbound SA not replaced")
	}
}

func TestRouteLookup(t *testing.T) {
	sites := map[string]*site{"B": {name: "B"}, "C": {name: "C"}, "D": {name: "D"}}
	rt := newRouteTable([]RouteConfig{
		{Prefix: netip.MustParsePrefix("172.16.0.0/16"), Site: "B"},
		{Prefix: netip.MustParsePrefix("172.16.2.0/24"), Site: "C"},
		{Prefix: netip.MustParsePrefix("172.16.2.128/25"), Site: "D"},
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Site: "B"},
		{Prefix: netip.MustParsePrefix("fd00::/8"), Site: "C"},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Site: "nowhere"},
	}, sites)
	tests := map[string]string{
		"172.16.9.9": "B", "172.16.2.1": "C", "172.16.2.200": "D", "8.8.8.8": "B",
		"fd12::1": "C", "2001:db8::1": "", "10.9.1.1": "B",
	}
	for a, want := range tests {
		s := rt.lookup(netip.MustParseAddr(a))
		got := ""
		if s != nil {
			got = s.name
		}
		if got != want {
			t.Errorf("lookup(%s) = %q, want %q", a, got, want)
		}
	}
}

func TestPathSelection(t *testing.T) {
	mk := func(id uint64, up bool, score time.Duration) *tunnel {
		tn := &tunnel{id: mix64(id)}
		tn.up.Store(up)
		tn.score.Store(int64(score))
		return tn
	}
	a, b, c := mk(1, true, 10*time.Millisecond), mk(2, true, 11*time.Millisecond), mk(3, true, 80*time.Millisecond)
	s := &site{tunnels: []*tunnel{a, b, c}}
	s.refresh()
	act := *s.active.Load()
	if len(act) != 2 || act[0] != a || act[1] != b {
		t.Fatalf("active set should be the two near-best tunnels, got %d", len(act))
	}
	// Flows are spread and sticky.
	chosen := map[uint32]*tunnel{}
	count := map[*tunnel]int{}
	for f := uint32(0); f < 1000; f++ {
		chosen[f] = pickTunnel(act, f)
		count[chosen[f]]++
	}
	if count[a] < 300 || count[b] < 300 {
		t.Fatalf("flows badly spread: %d / %d", count[a], count[b])
	}
	// a goes down: only its flows move.
	a.up.Store(false)
	s.refresh()
	act = *s.active.Load()
	for f := uint32(0); f < 1000; f++ {
		got := pickTunnel(act, f)
		if got == a {
			t.Fatal("flow kept on a down tunnel")
		}
		if chosen[f] == b && got != b {
			t.Fatal("flow of a healthy tunnel moved")
		}
	}
	// Hysteresis: with a back up and best, b (active) stays while within
	// 50 % + 10 ms, and c (not active) needs 25 % + 5 ms to join.
	a.up.Store(true)
	a.score.Store(int64(20 * time.Millisecond))
	b.score.Store(int64(38 * time.Millisecond)) // > 20*1.25+5 = 30, <= 20*1.5+10 = 40
	c.score.Store(int64(29 * time.Millisecond)) // joins: <= 30
	s.refresh()
	if act := *s.active.Load(); len(act) != 3 {
		t.Fatalf("hysteresis: want a, b (staying) and c (joining), got %d tunnels", len(act))
	}
	b.score.Store(int64(41 * time.Millisecond)) // beyond the stay limit
	s.refresh()
	if act := *s.active.Load(); len(act) != 2 || act[0] != a || act[1] != c {
		t.Fatal("hysteresis: b should leave beyond 50 % + 10 ms")
	}
	b.score.Store(int64(35 * time.Millisecond)) // within stay, not within join
	s.refresh()
	if act := *s.active.Load(); len(act) != 2 {
		t.Fatal("hysteresis: b should not rejoin above 25 % + 5 ms")
	}

	// All down: keep trying all of them.
	a.up.Store(false)
	b.up.Store(false)
	c.up.Store(false)
	s.refresh()
	if len(*s.active.Load()) != 3 {
		t.Fatal("with no tunnel up, all should stay eligible")
	}
}

func TestProbeState(t *testing.T) {
	var p probeState
	p.init()
	t0 := time.Unix(1000, 0)
	tick := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	// Five answered probes with RTTs 10, 12, 10, 14, 10 ms.
	rtts := []int{10, 12, 10, 14, 10}
	for i, r := range rtts {
		seq := p.send(tick(i))
		p.reply(seq, tick(i).Add(time.Duration(r)*time.Millisecond))
		if !p.evaluate(tick(i+1), time.Second) {
			t.Fatal("tunnel down while probes are answered")
		}
	}
	st := p.stats()
	if st.RTT != 11200*time.Microsecond || st.Jitter != 3*time.Millisecond || st.Loss != 0 || st.Window != 5 {
		t.Fatalf("stats %+v", st)
	}
	// Three lost probes mark the tunnel down; a late reply does not count.
	var up bool
	for i := 5; i < 8; i++ {
		seq := p.send(tick(i))
		up = p.evaluate(tick(i+1), time.Second)
		p.reply(seq, tick(i+2))
	}
	if up {
		t.Fatal("tunnel still up after 3 lost probes")
	}
	if st := p.stats(); st.Loss != 3.0/8 {
		t.Fatalf("loss %v, want 3/8", st.Loss)
	}
	seq := p.send(tick(9))
	p.reply(seq, tick(9).Add(5*time.Millisecond))
	if !p.evaluate(tick(9).Add(10*time.Millisecond), time.Second) {
		t.Fatal("tunnel not up again after an answered probe")
	}
}

func TestConfigValidate(t *testing.T) {
	good := tunnelConfig("t1", 5, gcmSA(0x100, 1), gcmSA(0x200, 2))
	tests := []struct {
		name string
		mod  func(c *Config)
		ok   bool
	}{
		{"good", func(c *Config) {}, true},
		{"duplicate name", func(c *Config) { c.Tunnels = append(c.Tunnels, c.Tunnels[0]); c.Tunnels[1].VNI = 9 }, false},
		{"duplicate VNI", func(c *Config) { x := c.Tunnels[0]; x.Name = "t2"; c.Tunnels = append(c.Tunnels, x) }, false},
		{"VNI too big", func(c *Config) { c.Tunnels[0].VNI = 1 << 24 }, false},
		{"not a /31", func(c *Config) { c.Tunnels[0].Peer = netip.MustParseAddr("10.100.0.2") }, false},
		{"remote without port", func(c *Config) { c.Tunnels[0].Remote = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), 0) }, false},
		{"IPv6 remote", func(c *Config) { c.Tunnels[0].Remote = netip.MustParseAddrPort("[2001:db8::1]:4789") }, false},
		{"no WAN", func(c *Config) { c.Tunnels[0].WANInterface = ""; c.Tunnels[0].WANAddress = netip.Addr{} }, false},
		{"bad SA", func(c *Config) { c.Tunnels[0].Inbound.EncKey = nil }, false},
		{"route without site", func(c *Config) { c.Routes = []RouteConfig{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}} }, false},
		{"duplicate route", func(c *Config) {
			r := RouteConfig{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Site: "B"}
			c.Routes = []RouteConfig{r, r}
		}, false},
		{"underlay MTU too small", func(c *Config) { c.UnderlayMTU = 100 }, false},
	}
	for _, tt := range tests {
		c := Config{TUN: TUNConfig{Name: "tdp0"}, Tunnels: []TunnelConfig{good}}
		tt.mod(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestTUNMTU(t *testing.T) {
	gcm := Config{Tunnels: []TunnelConfig{tunnelConfig("a", 1, gcmSA(0x100, 1), gcmSA(0x200, 1))}}
	cbc := Config{Tunnels: []TunnelConfig{tunnelConfig("a", 1, gcmSA(0x100, 1), cbcSA(0x200, 1))}}
	if got := TUNMTU(gcm); got != 1390 {
		t.Errorf("GCM-only TUN MTU %d, want 1390", got)
	}
	if got := TUNMTU(cbc); got != 1370 {
		t.Errorf("TUN MTU with CBC %d, want 1370", got)
	}
	if got := TUNMTU(Config{UnderlayMTU: 9000, Tunnels: gcm.Tunnels}); got != 8890 {
		t.Errorf("jumbo TUN MTU %d, want 8890", got)
	}
}

// TestDropsCounted checks that the receive path charges drops to the
// tunnel (or engine-wide when no tunnel is known) and counts good packets.
func TestDropsCounted(t *testing.T) {
	snap, w, tn, peer := testPair(t, gcmSA(0x700, 7))
	e := &Engine{}
	reply := make([]byte, 2048)
	now := time.Now()
	good := sealFrom(t, peer, 5, innerPacket(100))
	tampered := sealFrom(t, peer, 5, innerPacket(100))
	tampered[len(tampered)-1] ^= 1
	wrongSPI, _ := esp.New(gcmSA(0x701, 7))
	for _, b := range [][]byte{clone(good), clone(good), tampered, sealFrom(t, wrongSPI, 5, innerPacket(50)), sealFrom(t, peer, 9, innerPacket(50)), {1, 2, 3}} {
		start, end := e.decapOne(snap, w, b, netip.AddrPort{}, reply, now)
		if start >= 0 && !bytes.Equal(b[start:end], innerPacket(100)) {
			t.Fatal("delivered packet differs")
		}
	}
	want := map[DropReason]uint64{DropReplay: 1, DropAuth: 1, DropNoSA: 1}
	for r := DropReason(0); r < numDropReasons; r++ {
		if got := tn.drops[r].Load(); got != want[r] {
			t.Errorf("tunnel drops[%v] = %d, want %d", r, got, want[r])
		}
	}
	if tn.rxPackets.Load() != 1 || tn.rxBytes.Load() != 100 {
		t.Errorf("rx packets %d bytes %d, want 1 and 100", tn.rxPackets.Load(), tn.rxBytes.Load())
	}
	if e.global.drops[DropNoSA].Load() != 1 || e.global.drops[DropMalformed].Load() != 1 {
		t.Errorf("engine-wide drops: no_sa %d (unknown VNI), malformed %d", e.global.drops[DropNoSA].Load(), e.global.drops[DropMalformed].Load())
	}
}

// The engine benchmarks run the per-packet work of the two packet paths
// (route lookup, path selection, MSS clamp, framing, crypto, counters)
// without the syscalls, to show that it does not allocate.

func benchmarkEngineEncap(b *testing.B, sa esp.Config) {
	snap, w, tn, _ := testPair(b, sa)
	tn.sas.Store(&saSet{out: mustSA(b, sa), outCfg: sa, in: tn.sas.Load().in})
	snap.sites = map[string]*site{"B": {name: "B", tunnels: []*tunnel{tn}}}
	snap.sites["B"].refresh()
	snap.routes = newRouteTable([]RouteConfig{{Prefix: netip.MustParsePrefix("172.16.0.0/16"), Site: "B"}}, snap.sites)
	e := &Engine{}
	batches := map[*wanSock]*sendBatch{w: newSendBatch(batchSize)}
	pkt := innerPacket(1370)
	copy(pkt[16:], []byte{172, 16, 2, 2})
	buf := make([]byte, bufSize)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[frame.MaxHeadroom:], pkt)
		e.encapOne(snap, buf, len(pkt), batches, 0)
		bt := batches[w]
		if bt.n != 1 {
			b.Fatalf("packet not queued (drops %v)", dropMap(&tn.counters))
		}
		bt.n = 0
	}
}

func benchmarkEngineDecap(b *testing.B, sa esp.Config) {
	const n = 4096
	snap, w, _, peer := testPair(b, sa)
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = sealFrom(b, peer, 5, innerPacket(1370))
	}
	e := &Engine{}
	reply := make([]byte, 2048)
	work := make([]byte, len(frames[0]))
	now := time.Now()
	// From the configured endpoint: the learning check runs and finds
	// nothing to learn.
	from := netip.MustParseAddrPort("192.0.2.2:4789")
	b.SetBytes(1370)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			snap, w, _, _ = testPair(b, sa) // fresh replay window
			b.StartTimer()
		}
		copy(work, frames[i%n])
		if start, _ := e.decapOne(snap, w, work, from, reply, now); start < 0 {
			b.Fatal("dropped")
		}
	}
}

func mustSA(b *testing.B, c esp.Config) *esp.SA {
	sa, err := esp.New(c)
	if err != nil {
		b.Fatal(err)
	}
	return sa
}

func BenchmarkEngineEncapGCM(b *testing.B) { benchmarkEngineEncap(b, gcmSA(0x700, 7)) }
func BenchmarkEngineEncapCBC(b *testing.B) { benchmarkEngineEncap(b, cbcSA(0x700, 7)) }
func BenchmarkEngineDecapGCM(b *testing.B) { benchmarkEngineDecap(b, gcmSA(0x700, 7)) }
func BenchmarkEngineDecapCBC(b *testing.B) { benchmarkEngineDecap(b, cbcSA(0x700, 7)) }
