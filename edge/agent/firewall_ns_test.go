package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/trellis-sdwan/trellis/edge/firewall"
	"github.com/trellis-sdwan/trellis/internal/nstest"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// TestFirewallApplierInNamespace runs the interfaces and firewall
// appliers through a reconciler in a namespace of its own (h8a-agent-…):
// the firewall goes in after the interfaces, a bad firewall is refused
// and rolled back with the previous ruleset still in force, and clearing
// removes the table, the routing rules and the 1:1 address.
func TestFirewallApplierInNamespace(t *testing.T) {
	fwNS.Isolate(t, firewallApplierInNamespace)
}

// fwNS names the firewall test's namespace: h8a-agent-<pid>-<test>.
var fwNS = nstest.Scope{Prefix: "h8a-agent", Env: agentNS.Env, Why: "network namespace, nftables, routing rules"}

func firewallApplierInNamespace(t *testing.T) {
	for _, l := range []string{"h8a-w1", "h8a-w2", "h8a-l1"} {
		sh(t, "link", "add", l, "type", "veth", "peer", "name", l+"p")
		sh(t, "link", "set", l+"p", "up")
	}
	doc := func(fw *devproto.Firewall) *devproto.Desired {
		return &devproto.Desired{
			Interfaces: []devproto.InterfaceConfig{
				{Name: "h8a-w1", Role: devproto.RoleWAN, Address: "198.18.11.1/24", Gateway: "198.18.11.254", NAT: true, Labels: []string{"bb"}},
				{Name: "h8a-w2", Role: devproto.RoleWAN, Address: "198.18.12.1/24", Gateway: "198.18.12.254", NAT: true, Labels: []string{"lte"}},
				{Name: "h8a-l1", Role: devproto.RoleLAN, Address: "10.81.0.1/24"},
			},
			Applications: []devproto.Application{{ID: "voip", Name: "VoIP", ServiceClass: devproto.ClassRealtime, Importance: "high",
				Rules: []devproto.AppRule{{Protocol: "udp", Ports: []string{"5000-5001"}}}}},
			BreakoutRules: []devproto.PathRule{{ID: "voip", Priority: 1, Match: devproto.Match{Applications: []string{"voip"}}, Labels: []string{"lte"}}},
			Firewall:      fw,
		}
	}
	good := doc(&devproto.Firewall{
		Outbound: []devproto.FirewallRule{{ID: "no-smtp", Priority: 1, Action: "deny", Match: devproto.Match{Protocol: "tcp", Ports: []string{"25"}}}},
		OneToOne: []devproto.OneToOneNAT{{ID: "srv", Interface: "h8a-w1", PublicAddress: "198.18.11.9", PrivateAddress: "10.81.0.9"}},
	})
	bad := doc(&devproto.Firewall{
		Outbound: []devproto.FirewallRule{{ID: "typo", Priority: 1, Action: "deny", Match: devproto.Match{Ports: []string{"25x"}}}},
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ifs := NewInterfacesApplier(dir, nil)
	defer ifs.Close()
	fw := NewFirewallApplier(ctx, dir, "h8a-tun", nil)
	defer fw.Close()
	rec := NewReconciler(nil, ifs, fw)

	if err := rec.Apply(ctx, &Running{Version: "v1", Doc: good}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := outboundRules(t); len(got) != 1 {
		t.Fatalf("outbound chain: %d rules, want 1", len(got))
	}
	if !nstest.HasAddr(t, "h8a-w1", "198.18.11.9/32") {
		t.Error("1:1 address not added")
	}
	if rs := fwRules(t); len(rs) != 2 {
		t.Errorf("routing rules %v, want one per WAN", rs)
	}
	if b, err := os.ReadFile(filepath.Join(dir, FirewallStateFile)); err != nil || !strings.Contains(string(b), "198.18.11.9") {
		t.Errorf("state file: %q %v, want the 1:1 address recorded", b, err)
	}

	err := rec.Apply(ctx, &Running{Version: "v2", Doc: bad})
	var ae *ApplyError
	if !errors.As(err, &ae) || ae.Applier != "firewall" || !strings.Contains(err.Error(), `"25x"`) {
		t.Fatalf("bad firewall: %v, want an ApplyError of the firewall naming the bad port", err)
	}
	if rec.Running().Version != "v1" {
		t.Errorf("running %s after the refused document, want v1", rec.Running().Version)
	}
	if got := outboundRules(t); len(got) != 1 {
		t.Errorf("after the refused document the outbound chain has %d rules, want the previous 1", len(got))
	}

	if err := rec.Clear(ctx); err != nil {
		t.Fatalf("clear: %v", err)
	}
	if tableThere(t) {
		t.Error("table inet trellis_fw left after clear")
	}
	if nstest.HasAddr(t, "h8a-w1", "198.18.11.9/32") {
		t.Error("1:1 address left after clear")
	}
	if rs := fwRules(t); len(rs) != 0 {
		t.Errorf("routing rules left after clear: %v", rs)
	}
}

func nftConn(t *testing.T) *nftables.Conn {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseLasting() })
	return c
}

func tableThere(t *testing.T) bool {
	tb, err := nftConn(t).ListTableOfFamily(firewall.TableName, nftables.TableFamilyINet)
	return err == nil && tb != nil
}

func outboundRules(t *testing.T) []*nftables.Rule {
	t.Helper()
	c := nftConn(t)
	tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewall.TableName}
	rs, err := c.GetRules(tb, &nftables.Chain{Name: firewall.ChainOutbound, Table: tb})
	if err != nil {
		t.Fatalf("reading chain outbound: %v", err)
	}
	return rs
}

func fwRules(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Priority > firewall.RulePriorityBase && r.Priority <= firewall.RulePriorityBase+150 {
			out = append(out, r.String())
		}
	}
	return out
}
