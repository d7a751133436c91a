// Package nstest is the scaffolding of tests that change the kernel for
// real inside Linux network namespaces: skip unless root, create
// namespaces and veth pairs that are removed when the test ends (even
// when it fails), run a function or a command inside a namespace, and
// re-run the current test in a namespace of its own.
//
// It is imported only by tests (its helpers call t.Fatal and t.Skip).
// Every name a test creates in the kernel should carry the test's own
// prefix so that tests of parallel packages do not collide; Scope builds
// such names.
package nstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// MaxNameLen is the longest namespace name Scope.Name returns.
const MaxNameLen = 40

// RequireRoot skips t unless it runs as root with iproute2 (ip)
// installed; why says what the test needs root for, e.g. "network
// namespaces, nftables".
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (%s)", why)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
}

// RequireTUN skips t unless /dev/net/tun exists.
func RequireTUN(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
}

// RequireCommand skips t unless every command in names is on PATH.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("needs %s", n)
		}
	}
}

// Run runs the command args[0] with the arguments args[1:] and returns
// its combined output; t fails at once when it fails.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddNS creates network namespace name with its loopback up; it is
// deleted when t ends.
func AddNS(t testing.TB, name string) {
	t.Helper()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
}

// End is one end of a veth pair.
type End struct {
	Name string // interface name
	NS   string // namespace the end is moved into; "": it stays here
	Addr string // address with prefix length (CIDR) to add; "": none
	Up   bool   // set the link up
}

// Veth creates the veth pair a–b with each end right in its namespace
// (neither end passes through this one on the way), adds its address and
// sets it up as asked. The pair is deleted when t ends (or with the
// namespace of an end).
func Veth(t testing.TB, a, b End) {
	t.Helper()
	args := []string{"ip", "link", "add", a.Name}
	if a.NS != "" {
		args = append(args, "netns", a.NS)
	}
	args = append(args, "type", "veth", "peer", "name", b.Name)
	if b.NS != "" {
		args = append(args, "netns", b.NS)
	}
	Run(t, args...)
	del := ipIn(a.NS, "link", "del", a.Name)
	t.Cleanup(func() { _ = exec.Command(del[0], del[1:]...).Run() })
	for _, e := range []End{a, b} {
		if e.Addr != "" {
			Run(t, ipIn(e.NS, "addr", "add", e.Addr, "dev", e.Name)...)
		}
	}
	for _, e := range []End{a, b} {
		if e.Up {
			Run(t, ipIn(e.NS, "link", "set", e.Name, "up")...)
		}
	}
}

// Peer creates namespace ns (AddNS) joined to this one by the veth pair
// local–remote: local stays here, down and without address; remote goes
// into ns with address addr (CIDR), up, and a default route via gw when
// gw is set.
func Peer(t testing.TB, ns, local, remote, addr, gw string) {
	t.Helper()
	AddNS(t, ns)
	Veth(t, End{Name: local}, End{Name: remote, NS: ns, Addr: addr, Up: true})
	if gw != "" {
		Run(t, "ip", "-n", ns, "route", "add", "default", "via", gw)
	}
}

// ipIn is an ip command line run in namespace ns ("": here).
func ipIn(ns string, args ...string) []string {
	if ns == "" {
		return append([]string{"ip"}, args...)
	}
	return append([]string{"ip", "-n", ns}, args...)
}

// Addrs is the IPv4 addresses (with prefix length, e.g. "192.0.2.1/24")
// of link in the calling thread's namespace; t fails at once when there
// is no such link.
func Addrs(t testing.TB, link string) []string {
	t.Helper()
	l, err := netlink.LinkByName(link)
	if err != nil {
		t.Fatalf("link %s: %v", link, err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("addresses of %s: %v", link, err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return out
}

// HasAddr reports whether link has the IPv4 address cidr (Addrs).
func HasAddr(t testing.TB, link, cidr string) bool {
	t.Helper()
	return slices.Contains(Addrs(t, link), cidr)
}

// Do runs f on an OS thread switched into namespace ns ("": here, as
// is). Sockets f opens stay in ns after f returns.
func Do(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("entering namespace %s: %w", ns, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // the thread must not go back to the pool elsewhere
		}
	}()
	return f()
}

// Command is the command args run in namespace ns (ip netns exec),
// killed when ctx ends.
func Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// TestCommand re-runs test (a name as t.Name() gives it) of this test
// binary in namespace ns, verbose, with env added to this process's
// environment.
func TestCommand(ctx context.Context, ns, test string, env ...string) *exec.Cmd {
	cmd := Command(ctx, ns, os.Args[0], "-test.run="+RunPattern(test), "-test.v")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// RunPattern is the -test.run pattern that selects exactly test (a name
// as t.Name() gives it, subtests included).
func RunPattern(test string) string {
	parts := strings.Split(test, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// Rerun runs the current test again in namespace ns (TestCommand) and
// fails t unless it passed there; its output is logged.
func Rerun(ctx context.Context, t testing.TB, ns string, env ...string) {
	t.Helper()
	out, err := TestCommand(ctx, ns, t.Name(), env...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
	}
	t.Logf("in namespace %s:\n%s", ns, out)
}

// Scope names the kernel objects of one run of a package's tests and runs
// tests in namespaces of their own. Tests run by Scope.Isolate run in a
// child process; Env carries the parent's process id to it, so that names
// made in the parent and in the child agree.
type Scope struct {
	Prefix string // e.g. "h8a": names are Prefix-<pid>-<suffix>
	Env    string // environment variable set in the child processes
	Why    string // what the tests need root for (the skip message)
}

// Inside reports whether this process is the child Isolate started.
func (s Scope) Inside() bool { return os.Getenv(s.Env) != "" }

// Name is Prefix-<pid of the parent test process>-suffix, cut to
// MaxNameLen characters.
func (s Scope) Name(suffix string) string {
	pid := os.Getenv(s.Env)
	if pid == "" {
		pid = fmt.Sprint(os.Getpid())
	}
	n := fmt.Sprintf("%s-%s-%s", s.Prefix, pid, suffix)
	if len(n) > MaxNameLen {
		n = n[:MaxNameLen]
	}
	return n
}

// Isolate runs body in a network namespace of its own: in the parent it
// skips unless root, creates namespace Name(<test name without "Test">,
// lower case, "/" of subtests as "-"), re-runs the test there and fails
// unless it passed; in the
// child it runs body. When the test ends, every namespace whose name
// starts with Name("") is deleted: whatever the child created and left
// behind, even when it crashed.
func (s Scope) Isolate(t *testing.T, body func(*testing.T)) {
	t.Helper()
	if s.Inside() {
		body(t)
		return
	}
	RequireRoot(t, s.Why)
	ns := s.Name(strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "/", "-"))
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { s.DeleteAll() })
	Rerun(context.Background(), t, ns, fmt.Sprintf("%s=%d", s.Env, os.Getpid()))
}

// PrepareTimeout bounds the re-run of a test by Prepare.
const PrepareTimeout = 3 * time.Minute

// Prepare runs body in a namespace that setup prepares: in the parent it
// skips unless root, runs setup (which makes the namespaces and links the
// test needs, may skip for other needs, and returns the namespace to run
// body in and environment variables the child gets besides Env), re-runs
// the test there (for at most PrepareTimeout) and fails unless it passed;
// in the child it runs body. What setup made is removed when the test
// ends, by the cleanups it registered.
func (s Scope) Prepare(t *testing.T, setup func(*testing.T) (ns string, env []string), body func(*testing.T)) {
	t.Helper()
	if s.Inside() {
		body(t)
		return
	}
	RequireRoot(t, s.Why)
	ns, env := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), PrepareTimeout)
	defer cancel()
	Rerun(ctx, t, ns, append(env, fmt.Sprintf("%s=%d", s.Env, os.Getpid()))...)
}

// Peer is Peer(t, Name(suffix), local, remote, addr, gw); it returns
// the namespace's name.
func (s Scope) Peer(t testing.TB, suffix, local, remote, addr, gw string) string {
	t.Helper()
	ns := s.Name(suffix)
	Peer(t, ns, local, remote, addr, gw)
	return ns
}

// DeleteAll deletes every namespace whose name starts with Name("").
func (s Scope) DeleteAll() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), s.Name("")) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}
