package agent

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// dataplaneConfigOf is the data plane configuration (TUN trellis0) of
// the document doc; t fails at once when either step fails.
func dataplaneConfigOf(t *testing.T, doc string) dataplane.Config {
	t.Helper()
	d, err := DecodeDesired([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := DataplaneConfig(d, "trellis0")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDataplaneConfigWANs(t *testing.T) {
	doc := `{"stun_servers":["100.64.0.2:3478","100.64.0.2:3479"],"interfaces":[
	  {"name":"eth1","role":"wan","address":"192.0.2.1/24","gateway":"192.0.2.254"},
	  {"name":"eth2","role":"wan","dhcp":true},
	  {"name":"eth3","role":"lan","address":"172.16.1.1/24"},
	  {"name":"eth4","role":"unassigned"}]}`
	cfg := dataplaneConfigOf(t, doc)
	want := []dataplane.WANConfig{{Interface: "eth1", Address: netip.MustParseAddr("192.0.2.1")}, {Interface: "eth2"}}
	if len(cfg.WANs) != len(want) || cfg.WANs[0] != want[0] || cfg.WANs[1] != want[1] {
		t.Fatalf("WANs %+v, want %+v", cfg.WANs, want)
	}
	// A DHCP WAN without an address on the host (here: no such
	// interface) gets no socket until it has one.
	if got := withWANAddresses(cfg).WANs; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("WANs with addresses %+v", got)
	}
}

func TestInterfaceSignatureCoversPublicEndpoint(t *testing.T) {
	base := devproto.Interface{Name: "eth1", Addresses: []string{"192.168.1.2/24"}, LinkUp: true}
	pub := func(addr string, port int, nat string, at time.Time) devproto.Interface {
		i := base
		i.Public = &devproto.PublicEndpoint{Address: addr, Port: port, NAT: nat, Server: "100.64.0.2:3478", CheckedAt: at}
		return i
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sig := func(i devproto.Interface) string { return ifSignature([]devproto.Interface{i}) }
	tests := []struct {
		name string
		a, b devproto.Interface
		same bool
	}{
		{"check time only", pub("203.0.113.1", 4789, "restricted", t0), pub("203.0.113.1", 4789, "restricted", t0.Add(time.Minute)), true},
		{"first check", base, pub("203.0.113.1", 4789, "restricted", t0), false},
		{"port", pub("203.0.113.1", 4789, "restricted", t0), pub("203.0.113.1", 4790, "restricted", t0), false},
		{"address", pub("203.0.113.1", 4789, "restricted", t0), pub("203.0.113.2", 4789, "restricted", t0), false},
		{"NAT type", pub("203.0.113.1", 4789, "restricted", t0), pub("203.0.113.1", 4789, "full-cone", t0), false},
	}
	for _, tc := range tests {
		if got := sig(tc.a) == sig(tc.b); got != tc.same {
			t.Errorf("%s: same signature %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestPublicEndpointEvents(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pub := func(addr string, port int, nat string) *devproto.PublicEndpoint {
		return &devproto.PublicEndpoint{Address: addr, Port: port, NAT: nat, CheckedAt: at}
	}
	last := map[string]*devproto.PublicEndpoint{"eth1": pub("203.0.113.1", 4789, "restricted"), "eth2": pub("198.51.100.1", 4789, "none")}
	later := *last["eth1"]
	later.CheckedAt = at.Add(time.Minute)
	now := map[string]*devproto.PublicEndpoint{
		"eth1": &later,                                 // same, checked again: no event
		"eth2": pub("198.51.100.1", 4789, "full-cone"), // NAT type changed
		"eth3": pub("", 0, "blocked"),                  // new
	}
	evs := publicEndpointEvents(last, now)
	if len(evs) != 2 || evs[0].Interface != "eth2" || evs[1].Interface != "eth3" {
		t.Fatalf("events %+v", evs)
	}
	if evs[0].Kind != devproto.EventEndpointChange || evs[0].Message != "public 198.51.100.1:4789, NAT full-cone" || evs[1].Message != "blocked" {
		t.Fatalf("events %+v", evs)
	}
	var p devproto.PublicEndpoint
	if err := json.Unmarshal(evs[0].Data, &p); err != nil || p.NAT != "full-cone" {
		t.Fatalf("event data %s: %v", evs[0].Data, err)
	}
	if evs := publicEndpointEvents(now, now); len(evs) != 0 {
		t.Fatalf("events without a change: %+v", evs)
	}
}

// TestContactedB: the NAT's pinhole for the second STUN server (which
// answers the filtering question) is modelled like Linux conntrack: a
// single exchange lasts the quiet time; asked again more than 2 s later
// while it is open, the flow becomes a stream and lasts the stream time.
func TestContactedB(t *testing.T) {
	const quiet, stream = 32 * time.Second, 122 * time.Second
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name       string
		contacts   []float64 // seconds after t0
		wantUntil  float64
		wantStream bool
	}{
		{"one test", []float64{0}, 32, false},
		{"again within 2 s", []float64{0, 1.5}, 33.5, false},
		{"again after 8 s: stream", []float64{0, 8}, 130, true},
		{"stream refreshed", []float64{0, 8, 68}, 190, true},
		{"after it expired: fresh", []float64{0, 40}, 72, false},
		{"stream expired: fresh", []float64{0, 8, 131}, 163, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w wanNAT
			for _, c := range tc.contacts {
				w.contactedB(at(c), quiet, stream)
			}
			if !w.bUntil.Equal(at(tc.wantUntil)) || w.bStream != tc.wantStream {
				t.Fatalf("until +%v stream %v, want +%vs stream %v", w.bUntil.Sub(t0), w.bStream, tc.wantUntil, tc.wantStream)
			}
		})
	}
}
