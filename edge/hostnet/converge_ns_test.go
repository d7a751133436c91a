package hostnet

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// mainDefaults lists the main table's default routes as "ip route" shows
// them.
func mainDefaults(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, "ip", "route", "show", "default", "table", "main")), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// waitRoutes polls (bounded: 10 s) until the host's protocol-84 routes
// are want, and fails with what it saw last.
func waitRoutes(t *testing.T, stage string, want []string) {
	t.Helper()
	var got []string
	for i := 0; i < 100; i++ {
		if got = kernelRoutes(t); sameSet(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: routes %v, want %v", stage, got, want)
}

// TestRoutesBackAfterLinkFlap: the kernel deletes every route through a
// link that goes down and does not restore them when it comes up; the
// host puts back the WAN's main-table default route and its table 100+N
// by itself (watching netlink), without a new document, and does not
// bring up a link an administrator set down.
func TestRoutesBackAfterLinkFlap(t *testing.T) {
	inNamespace(t, func(t *testing.T) {
		run(t, "ip", "link", "set", "lo", "up")
		peerNS(t, "inet1", "h10a0", "h10a1", "203.0.113.1/24", "")
		peerNS(t, "inet2", "h10b0", "h10b1", "198.51.100.1/24", "")
		h, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		wan1 := devproto.InterfaceConfig{Name: "h10a0", Role: "wan", Address: "203.0.113.2/24", Gateway: "203.0.113.1"}
		wan2 := devproto.InterfaceConfig{Name: "h10b0", Role: "wan", Address: "198.51.100.2/24", Gateway: "198.51.100.1"}
		if err := h.Apply(mustSpec(t, wan1, wan2)); err != nil {
			t.Fatalf("apply: %v", err)
		}
		all := []string{
			"0.0.0.0/0 via 203.0.113.1 dev h10a0 metric 100",
			"0.0.0.0/0 via 203.0.113.1 dev h10a0 table 101",
			"203.0.113.0/24 dev h10a0 table 101",
			"0.0.0.0/0 via 198.51.100.1 dev h10b0 metric 200",
			"0.0.0.0/0 via 198.51.100.1 dev h10b0 table 102",
			"198.51.100.0/24 dev h10b0 table 102",
		}
		waitRoutes(t, "applied", all)

		run(t, "ip", "link", "set", "h10b0", "down")
		// The kernel took wan2's routes away.
		waitRoutes(t, "wan2 down", all[:3])
		// A re-sync while it is down leaves it down (and adds nothing
		// through it).
		if err := h.Resync(); err != nil {
			t.Fatalf("resync with wan2 down: %v", err)
		}
		if l, err := netlink.LinkByName("h10b0"); err != nil || l.Attrs().Flags&net.FlagUp != 0 {
			t.Fatalf("wan2 brought up by a re-sync (%v)", err)
		}
		if got := kernelRoutes(t); !sameSet(got, all[:3]) {
			t.Fatalf("routes with wan2 down: %v", got)
		}

		run(t, "ip", "link", "set", "h10b0", "up")
		waitRoutes(t, "wan2 up again", all)
		// Our own routes only; nothing duplicated.
		if got := mainDefaults(t); len(got) != 2 {
			t.Fatalf("main default routes %q", got)
		}

		// A route of ours someone deleted comes back too.
		run(t, "ip", "route", "del", "default", "table", "101")
		waitRoutes(t, "table 101 default deleted", all)

		// Both links flap at once.
		run(t, "ip", "link", "set", "h10a0", "down")
		run(t, "ip", "link", "set", "h10b0", "down")
		run(t, "ip", "link", "set", "h10a0", "up")
		run(t, "ip", "link", "set", "h10b0", "up")
		waitRoutes(t, "both flapped", all)
		if !slices.Contains(ourRules(t), "from 198.51.100.2/32 lookup 102 prio 1002") {
			t.Fatalf("rules %v", ourRules(t))
		}
	})
}
