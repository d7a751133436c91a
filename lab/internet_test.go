package lab

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestInternetCut: cutting the Internet beyond a WAN (its ISP drops what
// it would forward to the internet router) silences the internet router
// for that WAN only, while manage and the other site stay reachable over
// it; the cut is counted, can be repeated, and restoring puts everything
// back. One WAN without NAT, one behind a NAT (the rule sees the
// destination before the ISP's source NAT).
func TestInternetCut(t *testing.T) {
	needRoot(t)
	top := Topology{EdgeBreakout: true, Sites: []Site{{}, {WANs: []WAN{{NAT: NATPortRestricted}}}}}
	if err := top.Normalize(); err != nil {
		t.Fatal(err)
	}
	l, _ := upLab(t, top, false)
	p := l.Plan
	ns := func(node string) string {
		n, ok := p.Node(node)
		if !ok {
			t.Fatalf("no node %s", node)
		}
		return n.NS
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// reaches says whether node answers pings to dst (bounded: 3 × 300 ms).
	reaches := func(node string, dst netip.Addr) bool {
		_, err := Ping(ctx, ns(node), dst, 3, 300*time.Millisecond)
		return err == nil
	}
	s1WAN := netip.MustParseAddr("198.18.1.6") // s1's public WAN address
	_, s2ISP := ISPUplink(2, 1)                // s2's ISP: its NAT's public address
	s2PublicAddr := s2ISP.Addr()
	type want struct {
		node string
		dst  netip.Addr
		ok   bool
	}
	check := func(stage string, ws []want) {
		t.Helper()
		for _, w := range ws {
			if got := reaches(w.node, w.dst); got != w.ok {
				t.Errorf("%s: %s reaches %s: %v, want %v", stage, w.node, w.dst, got, w.ok)
			}
		}
	}
	all := func(inet1, inet2 bool) []want {
		return []want{
			{"s1/edge", p.InternetAddr, inet1}, {"s1/h1", p.InternetAddr, inet1},
			{"s2/edge", p.InternetAddr, inet2}, {"s2/h1", p.InternetAddr, inet2},
			{"s1/edge", p.ManageAddr, true}, {"s2/edge", p.ManageAddr, true},
			{"s2/edge", s1WAN, true}, {"s1/edge", s2PublicAddr, true},
		}
	}
	cuts := func() map[string]InternetCut {
		t.Helper()
		cs, err := p.InternetCuts()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]InternetCut{}
		for _, c := range cs {
			m[c.Link] = c
		}
		return m
	}

	check("before", all(true, true))
	if len(cuts()) != 0 {
		t.Fatalf("cuts before any: %v", cuts())
	}
	if err := p.SetInternetCut("s1/wan1", true); err != nil {
		t.Fatal(err)
	}
	check("s1/wan1 cut", all(false, true))
	c, ok := cuts()["s1/wan1"]
	if !ok || len(cuts()) != 1 || c.ISP != "s1/isp1" || c.Dropped == 0 {
		t.Errorf("after cutting s1/wan1: %+v", cuts())
	}
	// Cutting again replaces the rule (one rule, counter from zero).
	if err := p.SetInternetCut("s1-wan1", true); err != nil {
		t.Fatal(err)
	}
	if c := cuts()["s1/wan1"]; c.Dropped != 0 {
		t.Errorf("a second cut counts %d drops, want a fresh rule", c.Dropped)
	}
	if err := p.SetInternetCut("s2/wan1", true); err != nil {
		t.Fatal(err)
	}
	check("both cut", all(false, false))
	if err := p.SetInternetCut("s1/wan1", false); err != nil {
		t.Fatal(err)
	}
	check("s1/wan1 restored", all(true, false))
	for _, link := range []string{"s2/wan1", "s2/wan1"} { // twice: harmless
		if err := p.SetInternetCut(link, false); err != nil {
			t.Fatal(err)
		}
	}
	check("all restored", all(true, true))
	if len(cuts()) != 0 {
		t.Errorf("cuts after restoring: %v", cuts())
	}
	if err := p.SetInternetCut("s9/wan1", true); err == nil {
		t.Error("cutting an unknown link succeeded")
	}
}
