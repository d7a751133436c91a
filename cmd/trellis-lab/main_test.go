package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/lab"
)

// The test binary is also trellis-lab: `up` re-executes it as `relay`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "relay" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestUpDryRunAndValidation(t *testing.T) {
	out, err := run(t, "--prefix", "tx", "up", "--dry-run", "--sites", "2", "--wans", "2", "--nat", "symmetric")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tx-s2-isp2", "100.64.2.10/30", "s2/wan2", "symmetric", "10.2.0.11/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "--prefix", "tx", "up", "--dry-run")
	if err != nil || !strings.Contains(out, "s3/h1") || strings.Contains(out, "s4/") {
		t.Errorf("default is not 3 sites: %v\n%s", err, out)
	}
	out, err = run(t, "--prefix", "tx", "up", "--dry-run", "--hub", "s2", "--lan-dhcp", "--wan-dhcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hub and spoke, hubs s2", "DHCP 198.18.1.18-198.18.1.23", "198.18.1.17/28", "eth0       DHCP"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run --hub s2 --lan-dhcp --wan-dhcp output lacks %q:\n%s", want, out)
		}
	}
	bad := [][]string{
		{"up", "--dry-run", "--topology", "hub-spoke"},
		{"up", "--dry-run", "--topology", "ring"},
		{"up", "--dry-run", "--hub", "s4"},
		{"up", "--dry-run", "--topology", "mesh", "--hub", "s1"},
		{"up", "--dry-run", "--breakout"},
		{"up", "--dry-run", "--nat", "cone"},
		{"up", "--dry-run", "--wans", "4"},
		{"up", "--dry-run", "--sites", "0"},
		{"--prefix", "Bad-Prefix", "up", "--dry-run"},
		{"up", "--dry-run", "--file", "/nonexistent.yaml"},
		{"up", "--dry-run", "--file", "x.yaml", "--sites", "2"},
		{"exec", "s1/h1"},
		{"impair"},
	}
	for _, args := range bad {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCommandsEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	prefix := "tt" + hex.EncodeToString(b)
	root := t.TempDir()
	g := []string{"--prefix", prefix, "--state-root", root}
	t.Cleanup(func() { _ = lab.Down(context.Background(), prefix, root) })

	file := root + "/topo.yaml"
	if err := os.WriteFile(file, []byte("sites:\n  - wans: [{nat: symmetric}, {}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, append(g, "up", "--no-manage", "--file", file)...)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	if strings.Contains(out, "trellis-manage") {
		t.Errorf("up --no-manage mentions trellis-manage:\n%s", out)
	}
	if !strings.Contains(out, prefix+"-s1-edge") {
		t.Errorf("up output lacks the edge namespace:\n%s", out)
	}
	out, err = run(t, append(g, "status")...)
	if err != nil || !strings.Contains(out, "s1/wan2") || strings.Contains(out, "NOT ANSWERING") || strings.Contains(out, "EXITED") {
		t.Errorf("status: %v\n%s", err, out)
	}
	out, err = run(t, append(g, "impair", "s1/wan2", "--loss", "5%", "--delay", "30ms", "--rate", "20mbit")...)
	if err != nil || !strings.Contains(out, "loss 5%, delay 30ms, rate 20mbit") {
		t.Errorf("impair: %v\n%s", err, out)
	}
	out, err = run(t, append(g, "impair", "s1/wan2", "--dir", "download", "--rate", "1mbit")...)
	if err != nil || !strings.Contains(out, "upload up, loss 5%, delay 30ms, rate 20mbit; download up, loss 5%, delay 30ms, rate 1mbit") {
		t.Errorf("impair --dir download: %v\n%s", err, out)
	}
	if _, err := run(t, append(g, "impair", "s1/wan2", "--dir", "sideways", "--up")...); err == nil {
		t.Error("--dir sideways accepted")
	}
	out, err = run(t, append(g, "impair", "s1/wan2", "--down")...)
	if err != nil || !strings.Contains(out, "s1/wan2: upload down; download down") {
		t.Errorf("impair --down: %v\n%s", err, out)
	}
	if _, err := run(t, append(g, "impair", "s1/wan2", "--down", "--up")...); err == nil {
		t.Error("--down --up accepted")
	}
	if _, err := run(t, append(g, "impair", "s1/wan9", "--up")...); err == nil {
		t.Error("unknown link accepted")
	}
	// The Internet beyond a WAN: cut at its ISP, shown, restored.
	out, err = run(t, append(g, "impair", "s1/wan1", "--internet-cut")...)
	if err != nil || !strings.Contains(out, "s1/wan1: Internet cut: s1/isp1 drops what it would forward to 100.64.0.1") {
		t.Errorf("impair --internet-cut: %v\n%s", err, out)
	}
	if out, err = run(t, append(g, "status")...); err != nil || !strings.Contains(out, "s1/wan1: Internet cut (s1/isp1") {
		t.Errorf("status with the Internet cut: %v\n%s", err, out)
	}
	if _, err := run(t, append(g, "impair", "s1/wan1", "--internet-cut", "--internet-restore")...); err == nil {
		t.Error("--internet-cut --internet-restore accepted")
	}
	if _, err := run(t, append(g, "impair", "s1/wan9", "--internet-cut")...); err == nil {
		t.Error("--internet-cut of an unknown link accepted")
	}
	out, err = run(t, append(g, "impair", "s1/wan1", "--internet-restore")...)
	if err != nil || !strings.Contains(out, "s1/wan1: Internet beyond the link not cut") || strings.Contains(out, "Internet cut:") {
		t.Errorf("impair --internet-restore: %v\n%s", err, out)
	}
	if out, err = run(t, append(g, "status")...); err != nil || strings.Contains(out, "Internet cut") {
		t.Errorf("status after restoring the Internet: %v\n%s", err, out)
	}
	if _, err := run(t, append(g, "up", "--no-manage")...); err == nil {
		t.Error("second up accepted")
	}
	// A relay that dies makes status fail, naming it.
	l, err := lab.Open(root, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var victim lab.ProcRecord
	for _, p := range l.State.Processes {
		if p.Node == "s1/wan1" {
			victim = p
		}
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for victim.Alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out, err = run(t, append(g, "status")...)
	if err == nil || !strings.Contains(out, "EXITED") || !strings.Contains(out, "RELAY NOT ANSWERING") {
		t.Errorf("status with a dead relay: %v\n%s", err, out)
	}
	if out, err := run(t, append(g, "down")...); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if ns, _ := lab.ListNamespaces(prefix); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	if _, err := run(t, append(g, "status")...); err == nil {
		t.Error("status after down succeeded")
	}
}

// TestManageCommands runs `up` with trellis-manage and trellis-edge built
// from this tree (the default), then status and manage stop|start.
func TestManageCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("builds trellis-manage, trellis-edge and trellisctl")
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	prefix := "tt" + hex.EncodeToString(b)
	root := t.TempDir()
	g := []string{"--prefix", prefix, "--state-root", root}
	t.Cleanup(func() {
		_ = lab.Down(context.Background(), prefix, root)
		if left, _ := lab.Leftovers(prefix, root); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	// No forward: the host's 127.0.0.1:8443 belongs to whoever runs a lab.
	out, err := run(t, append(g, "up", "--sites", "2", "--forward", "", "--timeout", "2m")...)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	for _, want := range []string{"https://100.64.0.2:8443", "admin@trellis.lab", "password:", "fingerprint:", "trellisctl login",
		"s1       approved   connected     in-sync", "s2       approved   connected     in-sync", "mesh tunnels: 1, all up", "/wan1 ⇄ s"} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:8443") {
		t.Errorf("up --forward \"\" printed a forwarded address:\n%s", out)
	}
	out, err = run(t, append(g, "status")...)
	if err != nil || !strings.Contains(out, "trellis-edge") || !strings.Contains(out, "s2       approved   connected     in-sync") || !strings.Contains(out, "TUNNEL") ||
		!strings.Contains(out, "INTERNET") || !strings.Contains(out, "s2/wan1") {
		t.Errorf("status: %v\n%s", err, out)
	}
	// What up promises: LAN hosts of different sites reach each other
	// through the tunnel, and the internet through their edge's NAT.
	l, err := lab.Open(root, prefix)
	if err != nil {
		t.Fatal(err)
	}
	// The edges' Internet checks ping the lab's internet router, not
	// manage's default public addresses.
	for _, p := range l.State.Processes {
		if p.Name == lab.ManageProc && !strings.Contains(strings.Join(p.Argv, " "), "--internet-check-targets "+l.Plan.InternetAddr.String()) {
			t.Errorf("trellis-manage runs without the lab's Internet check target: %q", p.Argv)
		}
	}
	h1, _ := l.Plan.Node("s1/h1")
	for _, dst := range []netip.Addr{lab.HostAddr(2, 1, 1).Addr(), l.Plan.InternetAddr} {
		if _, err := lab.Ping(context.Background(), h1.NS, dst, 10, time.Second); err != nil {
			t.Errorf("after up, s1/h1 does not reach %s: %v", dst, err)
		}
	}
	out, err = run(t, append(g, "manage", "stop")...)
	if err != nil || !strings.Contains(out, "trellis-manage stopped") {
		t.Fatalf("manage stop: %v\n%s", err, out)
	}
	out, err = run(t, append(g, "status")...)
	if err != nil || !strings.Contains(out, "trellis-manage is stopped") || strings.Contains(out, "EXITED") {
		t.Errorf("status with manage stopped: %v\n%s", err, out)
	}
	out, err = run(t, append(g, "manage", "stop")...)
	if err != nil || !strings.Contains(out, "was not running") {
		t.Errorf("second manage stop: %v\n%s", err, out)
	}
	out, err = run(t, append(g, "manage", "start")...)
	if err != nil || !strings.Contains(out, "every device is connected and in sync") {
		t.Fatalf("manage start: %v\n%s", err, out)
	}
	if _, err := run(t, append(g, "manage", "start")...); err == nil {
		t.Error("manage start with manage running accepted")
	}
	if _, err := run(t, append(g, "manage", "restart")...); err == nil {
		t.Error("manage restart accepted")
	}
	if out, err := run(t, append(g, "down")...); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
}

// TestWANDHCPRenumber: a plumbing lab whose edge takes its WAN address
// from its ISP's busybox udhcpd; `renumber` moves it to the other range.
func TestWANDHCPRenumber(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := os.Stat("/usr/bin/busybox"); err != nil {
		t.Skip("needs busybox (udhcpd, udhcpc): run scripts/install-deps.sh")
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	prefix := "tt" + hex.EncodeToString(b)
	root := t.TempDir()
	g := []string{"--prefix", prefix, "--state-root", root}
	t.Cleanup(func() {
		_ = lab.Down(context.Background(), prefix, root)
		if left, _ := lab.Leftovers(prefix, root); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	file := root + "/topo.yaml"
	if err := os.WriteFile(file, []byte("sites:\n  - wans: [{dhcp: true, dhcp_lease: 10s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, append(g, "up", "--no-manage", "--breakout", "--file", file)...); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	l, err := lab.Open(root, prefix)
	if err != nil {
		t.Fatal(err)
	}
	inRange := func(alt bool) error {
		start, end := lab.WANPool(1, 1, lab.NATNone, alt)
		as, err := l.IfaceAddrs("s1/edge", "wan1")
		if err != nil {
			return err
		}
		if len(as) != 1 || as[0].Addr().Less(start) || end.Less(as[0].Addr()) {
			return fmt.Errorf("wan1 has %v, want one address of %s-%s", as, start, end)
		}
		return nil
	}
	// up waited for the lease; the lease's default route takes the host
	// out (breakout) to the internet router.
	if err := inRange(false); err != nil {
		t.Fatal(err)
	}
	h1, _ := l.Plan.Node("s1/h1")
	if _, err := lab.Ping(context.Background(), h1.NS, l.Plan.InternetAddr, 5, time.Second); err != nil {
		t.Errorf("s1/h1 does not reach the internet through the DHCP WAN: %v", err)
	}
	if out, err := run(t, append(g, "renumber", "s1/wan1")...); err != nil || !strings.Contains(out, "198.18.1.24-198.18.1.29") {
		t.Fatalf("renumber: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for err := inRange(true); err != nil; err = inRange(true) {
		if time.Now().After(deadline) {
			t.Fatalf("after renumber: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := lab.Ping(context.Background(), h1.NS, l.Plan.InternetAddr, 10, time.Second); err != nil {
		t.Errorf("s1/h1 does not reach the internet after the renumbering: %v", err)
	}
	for _, args := range [][]string{
		{"renumber", "s1/wan1", "--range", "198.18.1.2-198.18.1.5"},
		{"renumber", "s1/wan1", "--range", "198.18.1.29-198.18.1.24"},
		{"renumber", "s1/wan1", "--range", "junk"},
		{"renumber", "s1/wan2"},
	} {
		if out, err := run(t, append(g, args...)...); err == nil {
			t.Errorf("%v accepted: %s", args, out)
		}
	}
}
