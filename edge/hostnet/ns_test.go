package hostnet

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/vishvananda/netlink"
)

// The host is changed for real, so each namespace test re-runs the test
// binary inside a network namespace of its own (h3-<pid>-<test>), where
// every thread of the process lives; further namespaces (a LAN host, the
// "internet", a DHCP server) are created from there. Whatever a crashed
// child leaves is removed by the parent (nstest.Scope.Isolate).
var scope = nstest.Scope{Prefix: "h3", Env: "TRELLIS_HOSTNET_NS_TEST", Why: "network namespaces, addresses, routes, nftables"}

// inNS runs f on a thread switched into namespace ns (sockets created in
// f stay in ns).
func inNS(t *testing.T, ns string, f func()) {
	t.Helper()
	if err := nstest.Do(ns, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// kernelRoutes lists the protocol-84 IPv4 routes of all tables as text.
func kernelRoutes(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: DefaultProtocol}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	names := linkNames()
	var out []string
	for _, r := range rs {
		k, ok := keyOf(r, names)
		if !ok {
			t.Fatalf("odd route %v", r)
		}
		out = append(out, k.String())
	}
	return out
}

func hasRoute(t *testing.T, want string) bool {
	t.Helper()
	for _, r := range kernelRoutes(t) {
		if r == want {
			return true
		}
	}
	return false
}

// mainFirstRule is mainFirst as ourRules shows it.
const mainFirstRule = "from all lookup 254 prio 1000 suppress_prefixlength 0"

// ourRules lists the rules in the host's priority range as
// "from X lookup T prio P".
func ourRules(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Priority >= RuleBase && r.Priority <= RuleBase+MaxWANs {
			src := "all"
			if r.Src != nil {
				src = r.Src.String()
			}
			s := fmt.Sprintf("from %s lookup %d prio %d", src, r.Table, r.Priority)
			if r.SuppressPrefixlen >= 0 {
				s += fmt.Sprintf(" suppress_prefixlength %d", r.SuppressPrefixlen)
			}
			out = append(out, s)
		}
	}
	return out
}

func sysctlValue(t *testing.T, path string) string {
	t.Helper()
	v, err := readSysctl(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func natRules(t *testing.T) []string {
	t.Helper()
	r, err := NATRules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// watcher collects IPv4 address and route notifications.
type watcher struct {
	addrs  chan netlink.AddrUpdate
	routes chan netlink.RouteUpdate
	done   chan struct{}
}

func watch(t *testing.T) *watcher {
	t.Helper()
	w := &watcher{addrs: make(chan netlink.AddrUpdate, 256), routes: make(chan netlink.RouteUpdate, 256), done: make(chan struct{})}
	if err := netlink.AddrSubscribe(w.addrs, w.done); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteSubscribe(w.routes, w.done); err != nil {
		t.Fatal(err)
	}
	return w
}

// quiet drains notifications for a moment and returns those seen.
func (w *watcher) quiet(d time.Duration) []string {
	defer close(w.done)
	var seen []string
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case u := <-w.addrs:
			if u.LinkAddress.IP.To4() == nil {
				continue // IPv6 link-local addresses come and go (DAD)
			}
			seen = append(seen, fmt.Sprintf("address %v new=%v", u.LinkAddress.String(), u.NewAddr))
		case u := <-w.routes:
			if u.Family == netlink.FAMILY_V6 {
				continue
			}
			seen = append(seen, fmt.Sprintf("route %v via %v type %d", u.Dst, u.Gw, u.Type))
		case <-timer.C:
			return seen
		}
	}
}

// udpProbe sends from a socket in ns from to dst, and returns the source
// the server (a socket in ns to) saw, and whether its echo came back.
func udpProbe(t *testing.T, fromNS, src, toNS, dst string) (seen string, echoed bool) {
	t.Helper()
	var srv, cli *net.UDPConn
	var err error
	inNS(t, toNS, func() { srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(mustAddrPort(dst))) })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	inNS(t, fromNS, func() { cli, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	got := make(chan string, 8)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			got <- from.IP.String()
			_, _ = srv.WriteToUDP(buf[:n], from) // fails without a route back
		}
	}()
	for try := 0; try < 3; try++ {
		if _, err := cli.WriteToUDP([]byte("ping"), net.UDPAddrFromAddrPort(mustAddrPort(dst))); err != nil {
			t.Fatalf("sending from %s: %v", fromNS, err)
		}
		select {
		case seen = <-got:
		case <-time.After(2 * time.Second):
			continue
		}
		_ = cli.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		if _, _, err := cli.ReadFromUDP(buf); err == nil {
			return seen, true
		}
		return seen, false
	}
	return seen, false
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
