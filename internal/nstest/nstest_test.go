package nstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// scope names what these tests create in the kernel: nt-<pid>-….
var scope = Scope{Prefix: "nt", Env: "TRELLIS_NSTEST_TEST", Why: "network namespaces"}

func TestRunPattern(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"TestX", "^TestX$"},
		{"TestX/sub", "^TestX$/^sub$"},
		{"TestX/a.b(c)", `^TestX$/^a\.b\(c\)$`},
	} {
		if got := RunPattern(c.in); got != c.want {
			t.Errorf("RunPattern(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestScopeName(t *testing.T) {
	t.Setenv(scope.Env, "") // as in the parent process
	pid := fmt.Sprint(os.Getpid())
	for _, c := range []struct{ suffix, want string }{
		{"", "nt-" + pid + "-"},
		{"lan", "nt-" + pid + "-lan"},
		{strings.Repeat("x", 60), ("nt-" + pid + "-" + strings.Repeat("x", 60))[:MaxNameLen]},
	} {
		if got := scope.Name(c.suffix); got != c.want {
			t.Errorf("Name(%q) = %q, want %q", c.suffix, got, c.want)
		}
	}
	// A child names things after its parent's process id.
	t.Setenv(scope.Env, "42")
	if got := scope.Name("a"); got != "nt-42-a" || !scope.Inside() {
		t.Errorf("in a child: Name(a) = %q, Inside %v", got, scope.Inside())
	}
}

func nsExists(name string) bool {
	_, err := os.Stat("/var/run/netns/" + name)
	return err == nil
}

// TestVethBetweenNamespaces: two namespaces joined by a veth pair answer
// each other's pings; Do runs in the namespace asked for; all of it is
// gone when the (sub)test that made it ends.
func TestVethBetweenNamespaces(t *testing.T) {
	if scope.Inside() {
		t.Skip("runs in the parent process only")
	}
	RequireRoot(t, "network namespaces")
	a, b := scope.Name("veth-a"), scope.Name("veth-b")
	t.Run("build", func(t *testing.T) {
		AddNS(t, a)
		AddNS(t, b)
		Veth(t, End{Name: "ntvetha", NS: a, Addr: "192.0.2.1/24", Up: true}, End{Name: "ntvethb", NS: b, Addr: "192.0.2.2/24", Up: true})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := Command(ctx, a, "ping", "-c", "1", "-W", "5", "192.0.2.2").CombinedOutput(); err != nil {
			t.Fatalf("ping from %s to %s: %v\n%s", a, b, err, out)
		}
		for _, c := range []struct {
			ns, link string
			found    bool
		}{{a, "ntvetha", true}, {a, "ntvethb", false}, {b, "ntvethb", true}, {"", "ntvetha", false}} {
			err := Do(c.ns, func() error {
				_, err := net.InterfaceByName(c.link)
				return err
			})
			if (err == nil) != c.found {
				t.Errorf("in namespace %q: link %s found %v, want %v (%v)", c.ns, c.link, err == nil, c.found, err)
			}
		}
		if err := Do(a, func() error {
			if got := Addrs(t, "ntvetha"); !slices.Equal(got, []string{"192.0.2.1/24"}) {
				t.Errorf("Addrs(ntvetha) = %v, want [192.0.2.1/24]", got)
			}
			if !HasAddr(t, "ntvetha", "192.0.2.1/24") || HasAddr(t, "ntvetha", "192.0.2.2/24") || HasAddr(t, "ntvetha", "192.0.2.1/32") {
				t.Error("HasAddr(ntvetha) wrong")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := Do(scope.Name("none"), func() error { return nil }); err == nil {
			t.Error("Do in a namespace that does not exist succeeded")
		}
	})
	for _, ns := range []string{a, b} {
		if nsExists(ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if err := exec.Command("ip", "link", "show", "ntvetha").Run(); err == nil {
		t.Error("veth ntvetha left behind")
	}
}

// TestPeer: Scope.Peer's namespace reaches this one over the veth pair, by its
// default route.
func TestPeer(t *testing.T) {
	if scope.Inside() {
		t.Skip("runs in the parent process only")
	}
	RequireRoot(t, "network namespaces")
	here, peer := scope.Name("peer-here"), scope.Name("peer")
	AddNS(t, here)
	if err := Do(here, func() error {
		if got := scope.Peer(t, "peer", "ntpeerl", "ntpeerr", "198.51.100.2/30", "198.51.100.1"); got != peer {
			t.Errorf("Scope.Peer made namespace %q, want %q", got, peer)
		}
		Run(t, "ip", "addr", "add", "198.51.100.1/30", "dev", "ntpeerl")
		Run(t, "ip", "link", "set", "ntpeerl", "up")
		Run(t, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// 203.0.113.1 is off the link: only the default route leads there.
	if out, err := Command(ctx, peer, "ping", "-c", "1", "-W", "5", "203.0.113.1").CombinedOutput(); err != nil {
		t.Fatalf("ping from %s by its default route: %v\n%s", peer, err, out)
	}
}

// TestIsolate: the body runs in a child process in a namespace named
// after the test; namespaces it leaves behind are deleted.
func TestIsolate(t *testing.T) {
	var left string
	t.Run("child", func(t *testing.T) {
		scope.Isolate(t, func(t *testing.T) {
			out, err := exec.Command("ip", "netns", "identify", fmt.Sprint(os.Getpid())).Output()
			if err != nil {
				t.Fatalf("ip netns identify: %v", err)
			}
			if got, want := strings.TrimSpace(string(out)), scope.Name("isolate-child"); got != want {
				t.Fatalf("running in namespace %q, want %q", got, want)
			}
			// Left behind on purpose: the parent removes it.
			Run(t, "ip", "netns", "add", scope.Name("left"))
		})
		left = scope.Name("left")
	})
	if scope.Inside() {
		return // the parent cleans up after the child
	}
	if left != "" && nsExists(left) {
		t.Errorf("namespace %s left behind", left)
	}
	if nsExists(scope.Name("isolate-child")) {
		t.Errorf("namespace %s left behind", scope.Name("isolate-child"))
	}
}

// TestRequireCommand: a test needing a command that is not on PATH is
// skipped, one needing commands that are is not.
func TestRequireCommand(t *testing.T) {
	for _, c := range []struct {
		names []string
		skip  bool
	}{
		{[]string{"sh"}, false},
		{[]string{"sh", "trellis-nstest-no-such-command"}, true},
		{nil, false},
	} {
		var skipped bool
		t.Run(strings.Join(c.names, "+"), func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			RequireCommand(t, c.names...)
		})
		if skipped != c.skip {
			t.Errorf("RequireCommand(%q): skipped %v, want %v", c.names, skipped, c.skip)
		}
	}
}

// TestPrepare: the body runs in a child process, in the namespace setup
// made, with the environment setup asked for; setup runs in the parent
// only, and what it made is gone when the test ends.
func TestPrepare(t *testing.T) {
	var ran bool
	t.Run("child", func(t *testing.T) {
		scope.Prepare(t, func(t *testing.T) (string, []string) {
			ran = true
			ns := scope.Name("prepared")
			AddNS(t, ns)
			return ns, []string{"TRELLIS_NSTEST_PREPARED=yes"}
		}, func(t *testing.T) {
			out, err := exec.Command("ip", "netns", "identify", fmt.Sprint(os.Getpid())).Output()
			if err != nil {
				t.Fatalf("ip netns identify: %v", err)
			}
			if got, want := strings.TrimSpace(string(out)), scope.Name("prepared"); got != want {
				t.Fatalf("running in namespace %q, want %q", got, want)
			}
			if got := os.Getenv("TRELLIS_NSTEST_PREPARED"); got != "yes" {
				t.Fatalf("TRELLIS_NSTEST_PREPARED=%q in the child", got)
			}
		})
	})
	if scope.Inside() {
		if ran {
			t.Error("setup ran in the child")
		}
		return
	}
	if !ran {
		t.Error("setup did not run in the parent")
	}
	if nsExists(scope.Name("prepared")) {
		t.Errorf("namespace %s left behind", scope.Name("prepared"))
	}
}
