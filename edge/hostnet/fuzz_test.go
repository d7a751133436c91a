package hostnet

import (
	"encoding/json"
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// FuzzFromDesired: any interface list either is refused or yields a spec
// whose WANs are numbered 1..n in name order with distinct tables and
// priorities, gateways inside their subnets, and a plan that only names
// the spec's interfaces.
func FuzzFromDesired(f *testing.F) {
	f.Add(`[{"name":"wan0","role":"wan","address":"198.51.100.2/24","gateway":"198.51.100.1","nat":true},{"name":"lan0","role":"lan","address":"192.168.1.1/24"}]`)
	f.Add(`[{"name":"b","role":"wan","dhcp":true},{"name":"a","role":"wan","address":"10.0.0.1/31","gateway":"10.0.0.0","metric":5}]`)
	f.Add(`[{"name":"x","role":"unassigned"},{"name":"x","role":"lan"}]`)
	f.Add(`[{"name":"e0","role":"wan","address":"0.0.0.1/0","gateway":"255.255.255.254","mtu":70000}]`)
	f.Fuzz(func(t *testing.T, list string) {
		var ics []devproto.InterfaceConfig
		if json.Unmarshal([]byte(list), &ics) != nil {
			return
		}
		s, err := FromDesired(&devproto.Desired{Interfaces: ics})
		if err != nil {
			return
		}
		tables, prios := map[int]bool{}, map[int]bool{}
		for i, w := range s.WANs {
			if w.Index != i+1 || (i > 0 && s.WANs[i-1].Name >= w.Name) {
				t.Fatalf("WAN %d: %+v (numbering)", i, w)
			}
			if tables[w.Table()] || prios[w.Priority()] || !isOurTable(w.Table()) || !isOurRule(w.Priority(), w.Table()) {
				t.Fatalf("WAN %s: table %d priority %d", w.Name, w.Table(), w.Priority())
			}
			tables[w.Table()], prios[w.Priority()] = true, true
			if w.Metric <= 0 {
				t.Fatalf("WAN %s: metric %d", w.Name, w.Metric)
			}
			if w.Gateway.IsValid() && w.Address.IsValid() && (!w.Address.Masked().Contains(w.Gateway) || w.Gateway == w.Address.Addr()) {
				t.Fatalf("WAN %s: gateway %s with address %s", w.Name, w.Gateway, w.Address)
			}
			if w.DHCP && (w.Address.IsValid() || w.Gateway.IsValid()) {
				t.Fatalf("DHCP WAN %s with static addressing", w.Name)
			}
		}
		p := buildPlan(s, nil)
		for name := range p.addrs {
			if !s.Managed(name) {
				t.Fatalf("plan addresses unmanaged %s", name)
			}
		}
		for _, r := range p.routes {
			if !s.Managed(r.Dev) || (r.Table != mainTable && !isOurTable(r.Table)) {
				t.Fatalf("plan route %s", r)
			}
		}
		for _, r := range p.rules {
			if !isOurRule(r.Priority, r.Table) {
				t.Fatalf("plan rule %s outside the host's signatures", r)
			}
		}
	})
}
