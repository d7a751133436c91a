package hostnet

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// mainDefaults lists the main table's default routes as "ip route" shows
// them.
func mainDefaults(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(nstest.Run(t, "ip", "route", "show", "default", "table", "main")), "\n") {
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
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "set", "lo", "up")
		scope.Peer(t, "inet1", "h10a0", "h10a1", "203.0.113.1/24", "")
		scope.Peer(t, "inet2", "h10b0", "h10b1", "198.51.100.1/24", "")
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

		nstest.Run(t, "ip", "link", "set", "h10b0", "down")
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

		nstest.Run(t, "ip", "link", "set", "h10b0", "up")
		waitRoutes(t, "wan2 up again", all)
		// Our own routes only; nothing duplicated.
		if got := mainDefaults(t); len(got) != 2 {
			t.Fatalf("main default routes %q", got)
		}

		// A route of ours someone deleted comes back too.
		nstest.Run(t, "ip", "route", "del", "default", "table", "101")
		waitRoutes(t, "table 101 default deleted", all)

		// Both links flap at once.
		nstest.Run(t, "ip", "link", "set", "h10a0", "down")
		nstest.Run(t, "ip", "link", "set", "h10b0", "down")
		nstest.Run(t, "ip", "link", "set", "h10a0", "up")
		nstest.Run(t, "ip", "link", "set", "h10b0", "up")
		waitRoutes(t, "both flapped", all)
		if !slices.Contains(ourRules(t), "from 198.51.100.2/32 lookup 102 prio 1002") {
			t.Fatalf("rules %v", ourRules(t))
		}
	})
}

// TestPreexistingDefaultRoute: a box whose boot configuration already has
// a default route with the WAN's metric converges to the document. The
// kernel keeps same-metric routes side by side and uses the first one, so
// a foreign route left there would win over the document's.
func TestPreexistingDefaultRoute(t *testing.T) {
	scope.Isolate(t, func(t *testing.T) {
		nstest.Run(t, "ip", "link", "set", "lo", "up")
		scope.Peer(t, "inet", "h10w0", "h10w1", "203.0.113.1/24", "")
		scope.Peer(t, "other", "h10o0", "h10o1", "192.0.2.1/24", "")
		nstest.Run(t, "ip", "addr", "add", "203.0.113.2/24", "dev", "h10w0")
		nstest.Run(t, "ip", "link", "set", "h10w0", "up")
		nstest.Run(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "h10o0")
		nstest.Run(t, "ip", "link", "set", "h10o0", "up")
		wan := devproto.InterfaceConfig{Name: "h10w0", Role: "wan", Address: "203.0.113.2/24", Gateway: "203.0.113.1"}
		ours := "default via 203.0.113.1 dev h10w0 proto 84 metric 100"
		tests := []struct {
			name string
			pre  []string // "ip route add default ..." arguments
			want []string // main default routes after Apply
			gone []string // after Apply(Spec{})
		}{
			{"identical route adopted", []string{"via", "203.0.113.1", "dev", "h10w0", "metric", "100", "proto", "static"},
				[]string{ours}, nil},
			{"other gateway on the WAN replaced", []string{"via", "203.0.113.254", "dev", "h10w0", "metric", "100", "proto", "dhcp", "onlink"},
				[]string{ours}, nil},
			{"other interface left alone", []string{"via", "192.0.2.1", "dev", "h10o0", "metric", "100", "proto", "static"},
				[]string{"default via 192.0.2.1 dev h10o0 proto static metric 100", ours},
				[]string{"default via 192.0.2.1 dev h10o0 proto static metric 100"}},
			{"other metric left alone", []string{"via", "203.0.113.1", "dev", "h10w0", "metric", "50", "proto", "static"},
				[]string{"default via 203.0.113.1 dev h10w0 proto static metric 50", ours},
				[]string{"default via 203.0.113.1 dev h10w0 proto static metric 50"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				nstest.Run(t, append([]string{"ip", "route", "add", "default"}, tc.pre...)...)
				defer nstest.Run(t, "ip", "route", "flush", "default")
				h, err := New(Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				for i := range 2 { // twice: the second changes nothing
					if err := h.Apply(mustSpec(t, wan)); err != nil {
						t.Fatalf("apply %d: %v", i+1, err)
					}
					if got := mainDefaults(t); !slices.Equal(got, tc.want) {
						t.Fatalf("apply %d: main default routes %q, want %q", i+1, got, tc.want)
					}
				}
				if err := h.Apply(Spec{}); err != nil {
					t.Fatal(err)
				}
				if got := mainDefaults(t); !slices.Equal(got, tc.gone) {
					t.Fatalf("after the empty spec: %q, want %q", got, tc.gone)
				}
			})
		}
	})
}
