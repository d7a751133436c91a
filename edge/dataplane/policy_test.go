package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/classify"
	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
	"github.com/trellis-sdwan/trellis/edge/dataplane/frame"
	"github.com/trellis-sdwan/trellis/edge/dataplane/ippkt"
)

// udpPacket builds an IPv4 UDP packet of n bytes (valid header checksum).
func udpPacket(n int, src, dst string, sport, dport uint16, tos byte) []byte {
	p := make([]byte, n)
	p[0], p[1] = 0x45, tos
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8], p[9] = 64, ippkt.ProtoUDP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ipChecksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	return p
}

func ipChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func tuple(p []byte) ippkt.Tuple {
	t, ok := ippkt.ParseTuple(p)
	if !ok {
		panic("bad packet")
	}
	return t
}

var testApps = []classify.Application{
	{ID: "iperf", Category: "test", Class: classify.RealTime, Importance: "high", Rules: []classify.AppRule{{Protocol: ippkt.ProtoUDP, Ports: []classify.PortRange{{Lo: 5001, Hi: 5001}}}}},
	{ID: "bulk", Category: "test", Class: classify.BestEffort, Importance: "low", Rules: []classify.AppRule{{Protocol: ippkt.ProtoUDP, Ports: []classify.PortRange{{Lo: 9000, Hi: 9000}}}}},
}

// policyEngine builds an engine snapshot (no TUN, no sockets) with the
// given tunnels (all to site B, labels as configured), routes 172.16/16
// to B, and the applications and path rules.
func policyEngine(t testing.TB, rules []classify.PathRule, tcs ...TunnelConfig) (*Engine, *snapshot, map[string]*tunnel) {
	t.Helper()
	e := &Engine{apps: map[string]*appCounters{}}
	cfg := Config{Applications: testApps, PathRules: rules, FlowTableSize: 64}
	ps, err := e.compilePolicy(&cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	snap := &snapshot{cfg: cfg, pol: ps, flows: newFlowTable(64, time.Minute), tunnels: map[string]*tunnel{}, byVNI: map[uint32]*tunnel{}}
	s := &site{name: "B", rules: make([]ruleSel, len(rules))}
	tuns := map[string]*tunnel{}
	for i, tc := range tcs {
		w := &wanSock{key: wanKey{iface: "wan" + tc.Name}}
		sas, err := rollSAs(nil, tc, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tn := newTunnel(mix64(uint64(i+1)), tc, w, sas, 1500, 1500)
		tn.updateQuality(true, ProbeStats{}, ps.thresholds, hysteresis{})
		tuns[tc.Name] = tn
		snap.tunnels[tc.Name] = tn
		snap.byVNI[tc.VNI] = tn
		s.tunnels = append(s.tunnels, tn)
	}
	snap.sites = map[string]*site{"B": s}
	s.refresh()
	s.refreshRules(ps)
	snap.routes = newRouteTable([]RouteConfig{{Prefix: netip.MustParsePrefix("172.16.0.0/16"), Site: "B"}}, snap.sites)
	return e, snap, tuns
}

func labelled(name string, vni uint32, label string) TunnelConfig {
	tc := tunnelConfig(name, vni, gcmSA(0x1000+vni, byte(vni)), gcmSA(0x2000+vni, byte(vni)))
	tc.Label = label
	return tc
}

// send runs one packet through the outbound path and returns the tunnel
// it was queued on (nil: dropped) and the packet as sent (before framing).
func send(e *Engine, snap *snapshot, pkt []byte, now time.Time) *tunnel {
	tn, _ := sendFrame(e, snap, pkt, now)
	return tn
}

func sendFrame(e *Engine, snap *snapshot, pkt []byte, now time.Time) (*tunnel, []byte) {
	buf := make([]byte, bufSize)
	copy(buf[frame.MaxHeadroom:], pkt)
	batches := map[*wanSock]*sendBatch{}
	e.encapOne(snap, buf, len(pkt), batches, now.UnixNano())
	var tn *tunnel
	var f []byte
	for w, b := range batches {
		if b.n > 0 {
			tn = b.tunnels[0]
			f = append([]byte(nil), b.frames[0]...)
			b.n = 0
		}
		if b.locked {
			b.locked = false
			w.sendMu.Unlock()
		}
	}
	return tn, f
}

func TestFlowTable(t *testing.T) {
	e, snap, _ := policyEngine(t, nil, labelled("a", 1, "A"))
	_ = e
	ft := newFlowTable(8, 10*time.Second) // 2 buckets of 4
	ps := snap.pol
	now := time.Unix(1000, 0).UnixNano()
	fwd := tuple(udpPacket(100, "172.16.1.2", "172.16.2.2", 40000, 5001, 0))
	d, h := ft.lookup(ps, &fwd, 0, now)
	if d.app.id != "iperf" || d.class != classify.RealTime || d.dscp != 46 {
		t.Fatalf("forward: %+v", d)
	}
	// The reply finds the same entry, although its destination port is
	// not the application's.
	rev := fwd.Reverse()
	d2, h2 := ft.lookup(ps, &rev, 0, now+1)
	if d2.app != d.app || h2 != h || ft.created.Load() != 1 || d.app.flows.Load() != 1 {
		t.Fatalf("reverse direction: %+v (created %d)", d2, ft.created.Load())
	}
	// Unidentified traffic gets the class of its DSCP and keeps it.
	other := tuple(udpPacket(100, "172.16.1.2", "172.16.2.2", 40000, 7000, 0))
	if d := ft.lookup2(ps, &other, 46, now); d.app.id != "" || d.class != classify.RealTime || d.dscp != -1 {
		t.Fatalf("unidentified EF: %+v", d)
	}
	// Fill the table far beyond its capacity: it stays bounded and
	// evicts the least recently seen entries.
	for p := uint16(1); p <= 100; p++ {
		tu := tuple(udpPacket(100, "172.16.1.2", "172.16.2.2", p, 80, 0))
		ft.lookup(ps, &tu, 0, now+int64(p))
	}
	if got := ft.active(now + 200); got != ft.capacity {
		t.Fatalf("%d live entries in a table of %d", got, ft.capacity)
	}
	if ft.evicted.Load() == 0 {
		t.Fatal("no eviction counted")
	}
	// Idle timeout: every entry is free again.
	if got := ft.active(now + int64(11*time.Second)); got != 0 {
		t.Fatalf("%d entries after the idle timeout", got)
	}
	created := ft.created.Load()
	ft.lookup(ps, &fwd, 0, now+int64(11*time.Second))
	if ft.created.Load() != created+1 {
		t.Fatal("an idle flow was not classified again")
	}
	// A new policy generation reclassifies in place (no new flow).
	ps2 := *ps
	ps2.gen = 2
	ps2.qos.Classes[classify.RealTime].DSCP = 40
	if d := ft.lookup2(&ps2, &fwd, 0, now+int64(11*time.Second)+1); d.dscp != 40 || ft.created.Load() != created+1 {
		t.Fatalf("reclassification: %+v", d)
	}
}

func (ft *flowTable) lookup2(ps *policyState, t *ippkt.Tuple, dscp uint8, now int64) flowDecision {
	d, _ := ft.lookup(ps, t, dscp, now)
	return d
}

func TestClassifiedEncap(t *testing.T) {
	rules := []classify.PathRule{
		{ID: "block", Match: classify.Match{Protocol: ippkt.ProtoUDP, Ports: []classify.PortRange{{Lo: 6000, Hi: 6000}}}, Block: true},
		{ID: "rt", Match: classify.Match{Applications: []string{"iperf"}}, Labels: []string{"B", "A"}},
		{ID: "bulk", Match: classify.Match{Applications: []string{"bulk"}}, Labels: []string{"C"}, FallbackDrop: true},
	}
	e, snap, tn := policyEngine(t, rules, labelled("a", 1, "A"), labelled("b", 2, "B"))
	now := time.Now()
	rt := udpPacket(300, "172.16.1.2", "172.16.2.2", 40000, 5001, 0)
	if got := send(e, snap, rt, now); got != tn["b"] {
		t.Fatalf("real-time app should take label B, got %v", got)
	}
	for _, p := range []uint16{80, 81, 82, 83, 84, 85, 86, 87} {
		send(e, snap, udpPacket(300, "172.16.1.2", "172.16.2.2", 40000, p, 0), now)
	}
	if tn["a"].txPackets.Load() == 0 || tn["b"].txPackets.Load() == 0 {
		t.Fatal("unmatched flows should spread over both tunnels (routing)")
	}
	before := e.global.drops[DropPolicy].Load()
	if got := send(e, snap, udpPacket(300, "172.16.1.2", "172.16.2.2", 40000, 6000, 0), now); got != nil {
		t.Fatal("blocked flow sent")
	}
	if got := send(e, snap, udpPacket(300, "172.16.1.2", "172.16.2.2", 40000, 9000, 0), now); got != nil {
		t.Fatal("flow of a rule whose label has no tunnel, fallback drop, was sent")
	}
	if e.global.drops[DropPolicy].Load() != before+2 {
		t.Fatal("policy drops not counted")
	}
	// B goes down: the real-time flow moves to A at once.
	tn["b"].up.Store(false)
	for _, x := range tn {
		x.updateQuality(x.up.Load(), ProbeStats{}, snap.pol.thresholds, qualityCounts(time.Second))
	}
	snap.sites["B"].refresh()
	snap.sites["B"].refreshRules(snap.pol)
	if got := send(e, snap, rt, now); got != tn["a"] {
		t.Fatalf("after B went down the flow should take A, got %v", got)
	}
	// Counters: 2 packets of iperf, its flow counted once.
	var iperf AppStatus
	for _, a := range e.appsStatus() {
		if a.ID == "iperf" {
			iperf = a
		}
	}
	if iperf.Flows != 1 || iperf.TxPackets != 2 || iperf.TxBytes != 600 {
		t.Fatalf("iperf counters: %+v", iperf)
	}
}

func TestDSCPRewriteOnEncap(t *testing.T) {
	e, snap, tn := policyEngine(t, nil, labelled("a", 1, "A"))
	open := func(f []byte) []byte {
		t.Helper()
		sa, err := esp.New(tn["a"].sas.Load().outCfg)
		if err != nil {
			t.Fatal(err)
		}
		o, err := frame.ParseOuter(f)
		if err != nil {
			t.Fatal(err)
		}
		payload, _, err := sa.Open(o.ESP)
		if err != nil {
			t.Fatal(err)
		}
		_, inner, err := frame.ParseGRE(payload)
		if err != nil {
			t.Fatal(err)
		}
		return inner
	}
	// An identified application (iperf: real-time) is marked EF, ECN kept.
	_, f := sendFrame(e, snap, udpPacket(200, "172.16.1.2", "172.16.2.2", 40000, 5001, 0x01), time.Now())
	inner := open(f)
	if ippkt.DSCP(inner) != 46 || inner[1]&3 != 1 || ipChecksum(inner[:20]) != 0 {
		t.Fatalf("rewrite: tos %#x, checksum residue %#x", inner[1], ipChecksum(inner[:20]))
	}
	// Unidentified traffic keeps its DSCP.
	_, f = sendFrame(e, snap, udpPacket(200, "172.16.1.2", "172.16.2.2", 40000, 7777, 0x48), time.Now())
	if inner := open(f); inner[1] != 0x48 {
		t.Fatalf("unidentified packet's TOS changed to %#x", inner[1])
	}
}

func TestRulePathModes(t *testing.T) {
	th := classify.Thresholds{MaxLatencyMs: 50, MaxLossPct: 5}
	rules := []classify.PathRule{
		{ID: "prio", Match: classify.Match{Applications: []string{"iperf"}}, Labels: []string{"B", "A"}, Thresholds: th},
		{ID: "bal", Match: classify.Match{Applications: []string{"bulk"}}, Labels: []string{"A", "B"}, Mode: classify.Balance},
		{ID: "qual", Match: classify.Match{Protocol: ippkt.ProtoTCP}, Labels: []string{"A", "B", "C"}, Mode: classify.Quality, Thresholds: th},
	}
	_, snap, tn := policyEngine(t, rules, labelled("a", 1, "A"), labelled("b", 2, "B"), labelled("c", 3, "C"))
	s := snap.sites["B"]
	good := ProbeStats{Window: 30, Received: 30, RTT: 10 * time.Millisecond}
	slow := ProbeStats{Window: 30, Received: 30, RTT: 80 * time.Millisecond}
	stats := map[string]ProbeStats{"a": good, "b": good, "c": good}
	scores := map[string]time.Duration{"a": 10 * time.Millisecond, "b": 11 * time.Millisecond, "c": 40 * time.Millisecond}
	// The fake clock: one call of window is one probe interval of 1 s.
	h := qualityCounts(time.Second)
	qualityLeaveAfter, qualityRejoinAfter := h.leave, h.rejoin
	if h != (hysteresis{leave: 3, rejoin: 10}) {
		t.Fatalf("hysteresis at 1 s probes: %+v, want 3 and 10", h)
	}
	if h := qualityCounts(200 * time.Millisecond); h != (hysteresis{leave: 15, rejoin: 50}) {
		t.Fatalf("hysteresis at 200 ms probes: %+v, want 15 and 50", h)
	}
	window := func() {
		for name, x := range tn {
			x.score.Store(int64(scores[name]))
			x.updateQuality(x.up.Load(), stats[name], snap.pol.thresholds, h)
		}
		s.refresh()
		s.refreshRules(snap.pol)
	}
	sel := func(rule int) []string {
		var out []string
		if p := s.rules[rule].Load(); p != nil {
			for _, x := range *p {
				out = append(out, x.cfg.Name)
			}
		}
		return out
	}
	eq := func(got []string, want ...string) bool {
		m := map[string]bool{}
		for _, g := range got {
			m[g] = true
		}
		if len(got) != len(want) {
			return false
		}
		for _, w := range want {
			if !m[w] {
				return false
			}
		}
		return true
	}
	window()
	if !eq(sel(0), "b") || !eq(sel(1), "a", "b") || !eq(sel(2), "a", "b") {
		t.Fatalf("initial: prio %v, balance %v, quality %v", sel(0), sel(1), sel(2))
	}
	// b breaks the latency threshold: priority and quality keep it for
	// qualityLeaveAfter-1 windows, then leave it.
	stats["b"] = slow
	scores["b"] = 80 * time.Millisecond
	for i := 1; i < qualityLeaveAfter; i++ {
		window()
		if !eq(sel(0), "b") {
			t.Fatalf("window %d: priority left b too early: %v", i, sel(0))
		}
	}
	window()
	if !eq(sel(0), "a") || !eq(sel(2), "a") || !eq(sel(1), "a", "b") {
		t.Fatalf("after %d bad windows: prio %v, balance %v (no thresholds), quality %v", qualityLeaveAfter, sel(0), sel(1), sel(2))
	}
	// b recovers: back only after qualityRejoinAfter good windows, and
	// one bad window in between restarts the count.
	stats["b"] = good
	scores["b"] = 11 * time.Millisecond
	for i := 1; i < qualityRejoinAfter; i++ {
		window()
		if !eq(sel(0), "a") {
			t.Fatalf("good window %d: priority went back to b too early", i)
		}
	}
	stats["b"] = slow
	window()
	stats["b"] = good
	for i := 1; i < qualityRejoinAfter; i++ {
		window()
		if !eq(sel(0), "a") {
			t.Fatalf("a bad window did not restart the rejoin count (good window %d)", i)
		}
	}
	window()
	if !eq(sel(0), "b") || !eq(sel(2), "a", "b") {
		t.Fatalf("after recovery: prio %v, quality %v", sel(0), sel(2))
	}
	// Down: left at once by every rule (failover), no hysteresis.
	tn["b"].up.Store(false)
	window()
	if !eq(sel(0), "a") || !eq(sel(1), "a") || !eq(sel(2), "a") {
		t.Fatalf("b down: prio %v, balance %v, quality %v", sel(0), sel(1), sel(2))
	}
	// Nothing usable for the quality rule: empty (fallback applies).
	tn["a"].up.Store(false)
	stats["c"] = slow
	for i := 0; i < qualityLeaveAfter; i++ {
		window()
	}
	if len(sel(2)) != 0 || len(sel(0)) != 0 {
		t.Fatalf("no usable path: prio %v, quality %v", sel(0), sel(2))
	}
}

// BenchmarkEngineEncapClassifiedGCM is BenchmarkEngineEncapGCM with an
// application policy: every packet looks its flow up (a cache hit),
// matches a path rule's tunnel set and has its DSCP rewritten.
func BenchmarkEngineEncapClassifiedGCM(b *testing.B) {
	sa := gcmSA(0x700, 7)
	rules := []classify.PathRule{{ID: "rt", Match: classify.Match{Applications: []string{"iperf"}}, Labels: []string{"A"}}}
	e, snap, tn := policyEngine(b, rules, labelled("a", 1, "A"))
	tun := tn["a"]
	tun.sas.Store(&saSet{out: mustSA(b, sa), outCfg: sa, in: tun.sas.Load().in})
	batches := map[*wanSock]*sendBatch{tun.wan: newSendBatch(batchSize)}
	pkt := udpPacket(1370, "172.16.1.2", "172.16.2.2", 40000, 5001, 0)
	buf := make([]byte, bufSize)
	now := time.Now().UnixNano()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[frame.MaxHeadroom:], pkt)
		e.encapOne(snap, buf, len(pkt), batches, now)
		bt := batches[tun.wan]
		if bt.n != 1 {
			b.Fatalf("packet not queued (drops %v)", dropMap(&tun.counters))
		}
		bt.n = 0
	}
}

var _ = esp.AESGCM128

// BenchmarkEngineDecapClassifiedGCM is BenchmarkEngineDecapGCM with an
// application policy: every packet finds its flow (the reverse direction
// of a cached entry) and counts on its application.
func BenchmarkEngineDecapClassifiedGCM(b *testing.B) {
	const n = 4096
	rules := []classify.PathRule{{ID: "rt", Match: classify.Match{Applications: []string{"iperf"}}, Labels: []string{"A"}}}
	fwd := tuple(udpPacket(100, "172.16.1.2", "172.16.2.2", 40000, 5001, 0))
	mk := func() (*Engine, *snapshot, *tunnel) {
		e, snap, tn := policyEngine(b, rules, labelled("a", 5, "A"))
		snap.flows.lookup(snap.pol, &fwd, 0, time.Now().UnixNano()) // host A started the flow
		return e, snap, tn["a"]
	}
	e, snap, tun := mk()
	peer := mustSA(b, tun.sas.Load().in[0].cfg)
	// Replies of a flow host A started to 172.16.2.2:5001.
	inner := udpPacket(1370, "172.16.2.2", "172.16.1.2", 5001, 40000, 0)
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = sealFrom(b, peer, 5, inner)
	}
	reply := make([]byte, 2048)
	work := make([]byte, len(frames[0]))
	now := time.Now()
	from := netip.MustParseAddrPort("192.0.2.2:4789")
	b.SetBytes(1370)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			e, snap, tun = mk() // fresh replay window
			b.StartTimer()
		}
		copy(work, frames[i%n])
		if start, _ := e.decapOne(snap, tun.wan, work, from, reply, now); start < 0 {
			b.Fatalf("dropped (%v)", dropMap(&tun.counters))
		}
	}
	b.StopTimer()
	for _, a := range e.appsStatus() {
		if a.ID == "iperf" && a.RxPackets != uint64(b.N%n) && b.N%n != 0 {
			b.Fatal("replies not counted on the application")
		}
	}
}
