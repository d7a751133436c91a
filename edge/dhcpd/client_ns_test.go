package dhcpd

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
)

// The real-client test runs the server in a network namespace of its own
// (h4-<pid>-s, where the whole re-executed test binary lives) and busybox
// udhcpc in another (h4-<pid>-c), joined by a veth pair.
const (
	nsServerEnv = "TRELLIS_DHCPD_NS_SERVER"
	nsClientEnv = "TRELLIS_DHCPD_NS_CLIENT"
	srvIf       = "h4s0"
	cliIf       = "h4c0"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// scope names the test's namespaces: h4-<pid>-s (the server's), h4-<pid>-c.
var scope = nstest.Scope{Prefix: "h4", Env: nsServerEnv, Why: "network namespaces, veth pair, UDP port 67"}

func TestRealClient(t *testing.T) {
	scope.Prepare(t, func(t *testing.T) (string, []string) {
		nstest.RequireCommand(t, "busybox")
		if out, _ := exec.Command("busybox", "udhcpc", "--help").CombinedOutput(); !strings.Contains(string(out), "udhcpc") {
			t.Skip("busybox has no udhcpc")
		}
		sns, cns := scope.Name("s"), scope.Name("c")
		nstest.AddNS(t, sns)
		nstest.AddNS(t, cns)
		nstest.Veth(t, nstest.End{Name: srvIf, NS: sns, Addr: "192.168.77.1/24", Up: true}, nstest.End{Name: cliIf, NS: cns, Up: true})
		return sns, []string{nsClientEnv + "=" + cns}
	}, func(t *testing.T) { realClient(t, os.Getenv(nsClientEnv)) })
}

// udhcpcResult is what the client's script saw when it bound a lease.
type udhcpcResult struct {
	IP, Router, DNS, Lease, Subnet, Domain string
}

// udhcpc runs busybox udhcpc once in namespace ns with the MAC address
// mac, and returns what it bound. release makes it release the lease as
// it exits.
func udhcpc(t *testing.T, ns, mac string, release bool) udhcpcResult {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "bound")
	script := filepath.Join(dir, "script")
	// The script configures the address (udhcpc's release is sent from
	// it, so it is left in place at deconfig: the release waits for ARP)
	// and records the lease's parameters.
	body := `#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$subnet" dev "$interface"
	echo "$1" >> ` + out + `.events
	printf 'ip=%s\nrouter=%s\ndns=%s\nlease=%s\nsubnet=%s\ndomain=%s\n' "$ip" "$router" "$dns" "$lease" "$subnet" "$domain" > ` + out + ` ;;
esac
exit 0
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", ns, "link", "set", cliIf, "address", mac)
	args := []string{"netns", "exec", ns, "busybox", "udhcpc", "-i", cliIf, "-f", "-n", "-t", "5", "-T", "1", "-s", script}
	var log string
	if !release {
		log = run(t, "ip", append(args, "-q")...)
	} else {
		// udhcpc releases (-R) when it is stopped, not when it quits
		// after binding (-q): run it until it has bound, then stop it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var buf strings.Builder
		cmd := exec.CommandContext(ctx, "ip", append(args, "-R")...)
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// waitEvent waits (bounded) for the script to have seen n events.
		waitEvent := func(n int, what string) {
			for range 200 {
				if b, _ := os.ReadFile(out + ".events"); strings.Count(string(b), "\n") >= n {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("udhcpc: no %s event", what)
		}
		waitEvent(1, "bound")
		// Renew (unicast request and answer) before releasing.
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		waitEvent(2, "renew")
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Logf("udhcpc: %v", err)
		}
		log = buf.String()
		if ev, _ := os.ReadFile(out + ".events"); string(ev) != "bound\nrenew\n" {
			t.Errorf("udhcpc events %q, want bound then renew\n%s", ev, log)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("udhcpc bound no lease: %v\n%s", err, log)
	}
	var r udhcpcResult
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ip":
			r.IP = v
		case "router":
			r.Router = v
		case "dns":
			r.DNS = v
		case "lease":
			r.Lease = v
		case "subnet":
			r.Subnet = v
		case "domain":
			r.Domain = v
		}
	}
	return r
}

// waitLeases waits (bounded) until the server's leases satisfy ok.
func waitLeases(t *testing.T, s *Server, ok func([]Lease) bool) []Lease {
	t.Helper()
	for range 100 {
		if ls := s.Leases(); ok(ls) {
			return ls
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("leases never reached the expected state: %+v", s.Leases())
	return nil
}

func realClient(t *testing.T, cns string) {
	const macA, macB, macStatic = "52:54:00:77:00:0a", "52:54:00:77:00:0b", "52:54:00:77:00:5e"
	st, _ := ParseMAC(macStatic)
	cfg := Config{
		Interface:  srvIf,
		Address:    netip.MustParsePrefix("192.168.77.1/24"),
		RangeStart: netip.MustParseAddr("192.168.77.100"),
		RangeEnd:   netip.MustParseAddr("192.168.77.110"),
		DNS:        []netip.Addr{netip.MustParseAddr("192.168.77.53"), netip.MustParseAddr("9.9.9.9")},
		Domain:     "lab.example",
		LeaseTime:  2 * time.Hour,
		Static:     []StaticLease{{MAC: st, Address: netip.MustParseAddr("192.168.77.20"), Hostname: "printer"}},
	}
	dir := t.TempDir()
	start := func() *Server {
		s, err := Start(cfg, Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// Port 67 taken by another server: a clear error.
	other, err := net.ListenPacket("udp4", "0.0.0.0:67")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(cfg, Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "another DHCP server") {
		t.Errorf("port 67 in use: %v", err)
	}
	other.Close()
	s := start()

	stopCapture := capture(t, srvIf)
	a := udhcpc(t, cns, macA, false)
	t.Logf("client A bound %+v", a)
	if wire, ok := stopCapture(); ok {
		// tshark decodes the server's answers as standard DHCP.
		t.Logf("on the wire (type, yiaddr, mask, router, DNS, lease, server id):\n%s", wire)
		for _, want := range []string{
			"2\t192.168.77.100\t255.255.255.0\t192.168.77.1\t192.168.77.53,9.9.9.9\t7200\t192.168.77.1",
			"5\t192.168.77.100\t255.255.255.0\t192.168.77.1\t192.168.77.53,9.9.9.9\t7200\t192.168.77.1",
		} {
			if !strings.Contains(wire, want) {
				t.Errorf("no %q on the wire", want)
			}
		}
	}
	want := udhcpcResult{IP: "192.168.77.100", Router: "192.168.77.1", DNS: "192.168.77.53 9.9.9.9", Lease: "7200", Subnet: "255.255.255.0", Domain: "lab.example"}
	if a != want {
		t.Errorf("client A bound %+v, want %+v", a, want)
	}
	ls := waitLeases(t, s, func(ls []Lease) bool { return len(ls) == 1 })
	if ls[0].MAC != macA || ls[0].Address.String() != a.IP {
		t.Errorf("server's lease %+v", ls[0])
	}

	sl := udhcpc(t, cns, macStatic, false)
	if sl.IP != "192.168.77.20" {
		t.Errorf("static client bound %s, want its static 192.168.77.20", sl.IP)
	}

	// Restart from the lease file: a new client does not get A's address,
	// and A gets its address back.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LeaseFile(dir, srvIf)); err != nil {
		t.Fatalf("no lease file: %v", err)
	}
	s = start()
	if n := len(s.Leases()); n != 2 {
		t.Fatalf("%d leases after restart, want 2: %+v", n, s.Leases())
	}
	b := udhcpc(t, cns, macB, false)
	if b.IP == a.IP || b.IP != "192.168.77.101" {
		t.Errorf("after restart, new client B bound %s (A has %s)", b.IP, a.IP)
	}
	a2 := udhcpc(t, cns, macA, true)
	if a2.IP != a.IP {
		t.Errorf("after restart, client A bound %s, had %s", a2.IP, a.IP)
	}
	// A released its lease on exit.
	waitLeases(t, s, func(ls []Lease) bool {
		return len(ls) == 2 && !slices.ContainsFunc(ls, func(l Lease) bool { return l.MAC == macA })
	})
	if ifc, err := net.InterfaceByName(srvIf); err != nil || ifc.Flags&net.FlagUp == 0 {
		t.Errorf("server interface: %v %v", ifc, err)
	}
}

// capture records DHCP on iface with tshark when it is installed; stop
// returns the server's messages decoded (false without tshark).
func capture(t *testing.T, iface string) (stop func() (string, bool)) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		return func() (string, bool) { return "", false }
	}
	pcap := filepath.Join(t.TempDir(), "dhcp.pcap")
	cmd := exec.Command("tshark", "-i", iface, "-f", "udp port 67 or udp port 68", "-w", pcap)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// tshark says when dumpcap really captures.
	started, logged := make(chan struct{}), make(chan string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "Capture started") {
				close(started)
			}
		}
		logged <- strings.Join(lines, "\n")
	}()
	done := make(chan struct{})
	go func() { <-logged; _ = cmd.Wait(); close(done) }()
	kill := func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(kill)
	select {
	case <-started:
	case <-done:
		t.Fatal("tshark ended before capturing")
	case <-time.After(20 * time.Second):
		t.Fatal("tshark did not start capturing")
	}
	return func() (string, bool) {
		// dumpcap writes in batches: read until the ACK is there (or
		// give up after a bounded wait), then stop it.
		defer kill()
		var out string
		for range 100 {
			c := exec.Command("tshark", "-r", pcap, "-Y", "dhcp.option.dhcp == 2 || dhcp.option.dhcp == 5", "-T", "fields",
				"-e", "dhcp.option.dhcp", "-e", "dhcp.ip.your", "-e", "dhcp.option.subnet_mask", "-e", "dhcp.option.router",
				"-e", "dhcp.option.domain_name_server", "-e", "dhcp.option.ip_address_lease_time", "-e", "dhcp.option.dhcp_server_id")
			b, _ := c.Output()
			if out = string(b); strings.Contains(out, "\n5\t") || strings.HasPrefix(out, "5\t") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return out, true
	}
}
