package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dhcpd"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestDHCPApplierInNamespace runs the DHCP applier in a namespace of its
// own (h4-<pid>-a: the test binary re-runs itself there) and busybox
// udhcpc in another (h4-<pid>-b), joined by a veth pair.
const dhcpClientEnv = "TRELLIS_AGENT_DHCP_CLIENT_NS"

var dhcpScope = nstest.Scope{Prefix: "h4", Env: "TRELLIS_AGENT_DHCP_NS", Why: "network namespaces, veth pair, UDP port 67"}

func TestDHCPApplierInNamespace(t *testing.T) {
	dhcpScope.Prepare(t, func(t *testing.T) (string, []string) {
		nstest.RequireCommand(t, "busybox")
		sns, cns := dhcpScope.Name("a"), dhcpScope.Name("b")
		nstest.AddNS(t, sns)
		nstest.AddNS(t, cns)
		nstest.Veth(t, nstest.End{Name: "h4lan0", NS: sns, Up: true}, nstest.End{Name: "h4host0", NS: cns})
		sh(t, "-n", cns, "link", "set", "h4host0", "address", "52:54:00:88:00:01", "up")
		return sns, []string{dhcpClientEnv + "=" + cns}
	}, func(t *testing.T) { dhcpApplierInNamespace(t, os.Getenv(dhcpClientEnv)) })
}

// leaseOnce runs udhcpc once in ns and returns the address it bound.
func leaseOnce(t *testing.T, ns string) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "ip")
	script := filepath.Join(dir, "script")
	body := "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > " + out + "\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log, err := nstest.Command(ctx, ns, "busybox", "udhcpc", "-i", "h4host0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", script).CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc in %s: %v\n%s", ns, err, log)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("udhcpc bound nothing: %v\n%s", err, log)
	}
	return strings.TrimSpace(string(b))
}

func dhcpApplierInNamespace(t *testing.T, cns string) {
	sh(t, "addr", "add", "192.168.88.1/24", "dev", "h4lan0")
	state := t.TempDir()
	ap := NewDHCPApplier(state, nil)
	t.Cleanup(func() { ap.Close() })
	ctx := context.Background()
	server := devproto.DHCPServer{Interface: "h4lan0", RangeStart: "192.168.88.100", RangeEnd: "192.168.88.150", DNS: []string{"192.168.88.1"}, LeaseSeconds: 3600}
	doc := &devproto.Desired{
		Interfaces:  []devproto.InterfaceConfig{{Name: "h4lan0", Role: devproto.RoleLAN, Address: "192.168.88.1/24"}},
		DHCPServers: []devproto.DHCPServer{server},
	}
	if err := ap.Apply(ctx, nil, doc); err != nil {
		t.Fatal(err)
	}
	// The agent's view: stats, early-stats signal, metrics.
	a := &Agent{rec: NewReconciler(nil, ap), dp: &DataplaneApplier{}}
	changes := a.leaseChanges()
	drain := func() {
		for {
			select {
			case <-changes:
			default:
				return
			}
		}
	}
	drain()
	if got := leaseOnce(t, cns); got != "192.168.88.100" {
		t.Fatalf("client bound %s, want 192.168.88.100", got)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Error("no lease change signalled")
	}
	st := a.collectStats()
	if len(st.Leases) != 1 || st.Leases[0].Interface != "h4lan0" || st.Leases[0].MAC != "52:54:00:88:00:01" || st.Leases[0].Address != "192.168.88.100" {
		t.Fatalf("stats leases %+v", st.Leases)
	}
	rec := httptest.NewRecorder()
	a.metrics = newMetrics()
	a.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`trellis_edge_dhcp_leases{interface="h4lan0"} 1`, `trellis_edge_dhcp_pool_size{interface="h4lan0"} 51`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}

	rec = httptest.NewRecorder()
	a.controlHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/leases", nil))
	var listed []devproto.Lease
	if err := json.Unmarshal(rec.Body.Bytes(), &listed); err != nil || len(listed) != 1 || listed[0].Address != "192.168.88.100" {
		t.Errorf("control socket /leases: %v %s", err, rec.Body)
	}

	// An unrelated change keeps the server (same instance).
	first := ap.servers["h4lan0"]
	doc2 := *doc
	doc2.Routes = []devproto.Route{{Destination: "10.1.0.0/16", Gateway: "192.168.88.254"}}
	if err := ap.Apply(ctx, doc, &doc2); err != nil {
		t.Fatal(err)
	}
	if ap.servers["h4lan0"] != first {
		t.Error("server restarted for an unrelated change")
	}
	// The same server with its address read from the interface: unchanged too.
	doc3 := &devproto.Desired{DHCPServers: []devproto.DHCPServer{server}}
	if err := ap.Apply(ctx, &doc2, doc3); err != nil {
		t.Fatal(err)
	}
	if ap.servers["h4lan0"] != first {
		t.Error("server restarted when its address came from the interface instead of the document")
	}
	// A changed configuration restarts it with its leases.
	server.DNS = []string{"9.9.9.9"}
	doc4 := &devproto.Desired{DHCPServers: []devproto.DHCPServer{server}}
	if err := ap.Apply(ctx, doc3, doc4); err != nil {
		t.Fatal(err)
	}
	if ap.servers["h4lan0"] == first {
		t.Error("server not restarted for a new DNS server")
	}
	if ls := ap.Leases(); len(ls) != 1 || ls[0].Address != "192.168.88.100" {
		t.Errorf("leases after the restart: %+v", ls)
	}
	// A bad document changes nothing.
	bad := &devproto.Desired{DHCPServers: []devproto.DHCPServer{{Interface: "h4lan0", RangeStart: "192.168.88.200", RangeEnd: "192.168.88.100"}}}
	if err := ap.Apply(ctx, doc4, bad); err == nil || !strings.Contains(err.Error(), "after range end") {
		t.Errorf("bad range: %v", err)
	}
	if len(ap.Leases()) != 1 {
		t.Error("a refused document stopped the server")
	}
	missing := &devproto.Desired{DHCPServers: []devproto.DHCPServer{{Interface: "h4none0", RangeStart: "192.168.1.10", RangeEnd: "192.168.1.20"}}}
	if err := ap.Apply(ctx, doc4, missing); err == nil || !strings.Contains(err.Error(), "h4none0") {
		t.Errorf("missing interface: %v", err)
	}
	// Nil stops everything; the lease file stays.
	if err := ap.Apply(ctx, doc4, nil); err != nil {
		t.Fatal(err)
	}
	if len(ap.Leases()) != 0 || len(a.collectStats().Leases) != 0 {
		t.Error("leases reported with no server running")
	}
	ls, err := dhcpd.ReadLeaseFile(dhcpd.LeaseFile(filepath.Join(state, DHCPDir), "h4lan0"))
	if err != nil || len(ls) != 1 {
		t.Fatalf("lease file after stopping: %v %v", ls, err)
	}
	// Started again, the client gets its address back even when another
	// client asks first.
	if err := ap.Apply(ctx, nil, doc4); err != nil {
		t.Fatal(err)
	}
	sh(t, "-n", cns, "link", "set", "h4host0", "address", "52:54:00:88:00:02")
	if got := leaseOnce(t, cns); got != "192.168.88.101" {
		t.Errorf("second client bound %s, want 192.168.88.101", got)
	}
	sh(t, "-n", cns, "link", "set", "h4host0", "address", "52:54:00:88:00:01")
	if got := leaseOnce(t, cns); got != "192.168.88.100" {
		t.Errorf("first client bound %s after the restart, want its 192.168.88.100", got)
	}
}
