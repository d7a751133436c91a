package agent

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-sdwan/trellis/edge/wancheck"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestInternetWANs(t *testing.T) {
	d, err := DecodeDesired([]byte(`{"interfaces":[
	  {"name":"wan0","role":"wan","address":"192.0.2.1/24"},
	  {"name":"wan1","role":"wan","dhcp":true},
	  {"name":"wan2","role":"wan","dhcp":true,"address":"198.51.100.1/24"},
	  {"name":"wan3","role":"wan"},
	  {"name":"lan0","role":"lan","address":"10.0.0.1/24"},
	  {"name":"eth9","role":"unassigned"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := internetWANs(d)
	want := []wancheck.WAN{
		{Interface: "wan0", Address: netip.MustParseAddr("192.0.2.1")},
		{Interface: "wan1"}, {Interface: "wan2"}, {Interface: "wan3"},
	}
	if len(got) != len(want) {
		t.Fatalf("WANs %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("WANs %+v, want %+v", got, want)
		}
	}
}

func TestInternetSignatureAndStats(t *testing.T) {
	status := map[string]devproto.InternetStatus{
		"wan1": {Reachable: false, Error: "wan1: link down"},
		"wan0": {Reachable: true, Target: "1.1.1.1", RTTMillis: 12},
	}
	if got := internetSignature(status); got != "wan0:up wan1:down" {
		t.Fatalf("signature %q", got)
	}
	if got := internetSignature(nil); got != "" {
		t.Fatalf("signature without checks %q", got)
	}
	// Only the verdicts count: a new RTT or error is no news.
	status2 := map[string]devproto.InternetStatus{"wan1": {Error: "other"}, "wan0": {Reachable: true, RTTMillis: 99}}
	if internetSignature(status2) != internetSignature(status) {
		t.Fatal("signature changed without a verdict changing")
	}
	ifs := []devproto.InterfaceStats{{Name: "lan0"}, {Name: "wan0"}, {Name: "wan1"}}
	withInternet(ifs, status)
	if ifs[0].Internet != nil || ifs[1].Internet == nil || !ifs[1].Internet.Reachable || ifs[2].Internet == nil || ifs[2].Internet.Error != "wan1: link down" {
		t.Fatalf("stats %+v", ifs)
	}
}

func TestDecodeDesiredInternetCheck(t *testing.T) {
	tests := []struct {
		check string
		err   string // "" = accepted
	}{
		{`{"targets":["1.1.1.1","8.8.8.8"],"interval_s":5,"timeout_ms":1000,"fail_rounds":3}`, ""},
		{`{"targets":[],"interval_s":0,"timeout_ms":0,"fail_rounds":0}`, ""}, // no targets: off
		{`{"targets":["1.1.1.1"],"interval_s":0,"timeout_ms":1000,"fail_rounds":3}`, "internet_check: interval_s 0"},
		{`{"targets":["1.1.1.1"],"interval_s":1,"timeout_ms":1000,"fail_rounds":3}`, "must be below the interval"},
		{`{"targets":["dns.google"],"interval_s":5,"timeout_ms":1000,"fail_rounds":3}`, "not an IPv4 address"},
		{`{"targets":["1.1.1.1"],"interval_s":5,"timeout_ms":1000,"fail_rounds":3,"extra":1}`, "unknown field"},
	}
	for _, tt := range tests {
		_, err := DecodeDesired([]byte(`{"name":"x","internet_check":` + tt.check + `}`))
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("internet_check %s: err %v, want %q", tt.check, err, tt.err)
		}
	}
}

// switchProber answers every echo while up is set.
type switchProber struct{ up atomic.Bool }

func (p *switchProber) Probe(_ context.Context, pr wancheck.Probe) ([]wancheck.Answer, error) {
	out := make([]wancheck.Answer, len(pr.Targets))
	for i, t := range pr.Targets {
		out[i] = wancheck.Answer{Target: t, Answered: p.up.Load(), RTT: 7 * time.Millisecond}
	}
	return out, nil
}

// A WAN's Internet verdict changing sends stats at once (not at the next
// stats period, an hour here), with the status in the WAN's interface
// counters; the Prometheus gauges follow; a document without checks
// removes the statuses.
func TestAgentSendsStatsWhenInternetChanges(t *testing.T) {
	old := sysinfoCounters
	sysinfoCounters = func() ([]devproto.InterfaceStats, error) {
		return []devproto.InterfaceStats{{Name: "eth9", LinkUp: true}, {Name: "wcwan0", LinkUp: true}}, nil
	}
	t.Cleanup(func() { sysinfoCounters = old })

	prober := &switchProber{}
	prober.up.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	inet := NewInternetApplier(ctx, nil, wancheck.Options{Prober: prober,
		Resolver: func(string, netip.Addr) (netip.Addr, error) { return netip.MustParseAddr("192.0.2.1"), nil }})
	t.Cleanup(func() { cancel(); inet.Close() })

	fm := newFakeManage(t)
	dir := filepath.Join(t.TempDir(), "state")
	ra := startAgent(t, fm, dir, inet, 0)
	fc := fm.nextConn(t)
	fc.expect(t, devproto.TypeHello)
	fc.send(t, devproto.TypeWelcome, "", devproto.Welcome{DeviceID: "dev-m1", Approval: "approved", HeartbeatSeconds: 30, StatsEverySeconds: 3600})
	doc := `{"device_id":"dev-m1","name":"v1","interfaces":[{"name":"wcwan0","role":"wan","address":"192.0.2.1/24"}],
	  "internet_check":{"targets":["192.0.2.254"],"interval_s":1,"timeout_ms":100,"fail_rounds":1}}`
	fc.send(t, devproto.TypeConfig, "c1", configMsg(doc))
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied %+v", ap)
	}
	wanStats := func() (*devproto.InternetStatus, *devproto.InternetStatus) {
		t.Helper()
		st := body[devproto.Stats](t, fc.expect(t, devproto.TypeStats))
		var wan, other *devproto.InternetStatus
		for _, i := range st.Interfaces {
			switch i.Name {
			case "wcwan0":
				wan = i.Internet
			case "eth9":
				other = i.Internet
			}
		}
		return wan, other
	}
	wan, other := wanStats()
	if wan == nil || !wan.Reachable || wan.Target != "192.0.2.254" || wan.RTTMillis != 7 || other != nil {
		t.Fatalf("first stats: wan %+v, other %+v", wan, other)
	}
	gauges := func() map[string]float64 {
		mfs, err := ra.a.internetGatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				out[mf.GetName()+"{"+labelOf(m)+"}"] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if g := gauges(); g["trellis_edge_wan_internet_reachable{wcwan0}"] != 1 || g["trellis_edge_wan_internet_rtt_seconds{wcwan0}"] != 0.007 || len(g) != 3 {
		t.Fatalf("gauges while reachable: %v", g)
	}

	prober.up.Store(false)
	wan, _ = wanStats()
	if wan == nil || wan.Reachable || !strings.Contains(wan.Error, "no answer from 192.0.2.254") || wan.Target != "192.0.2.254" || wan.RTTMillis != 7 {
		t.Fatalf("stats after the target went silent: %+v", wan)
	}
	if g := gauges(); g["trellis_edge_wan_internet_reachable{wcwan0}"] != 0 || len(g) != 2 || g["trellis_edge_wan_internet_loss_ratio{wcwan0}"] <= 0 {
		t.Fatalf("gauges while unreachable: %v", g)
	}
	// The control socket's status (trellis-edge status --json) has it.
	if in := ra.a.StatusNow().Internet["wcwan0"]; in.Reachable || in.Error == "" {
		t.Fatalf("status: %+v", ra.a.StatusNow().Internet)
	}

	// Checks off: no status, no gauges.
	fc.send(t, devproto.TypeConfig, "c2", configMsg(`{"device_id":"dev-m1","name":"v2","interfaces":[{"name":"wcwan0","role":"wan","address":"192.0.2.1/24"}]}`))
	if ap := body[devproto.Applied](t, fc.expect(t, devproto.TypeApplied)); !ap.OK {
		t.Fatalf("applied %+v", ap)
	}
	for _, i := range ra.a.collectStats().Interfaces {
		if i.Internet != nil {
			t.Fatalf("Internet status with checks off: %+v", i)
		}
	}
	if g := gauges(); len(g) != 0 {
		t.Fatalf("gauges with checks off: %v", g)
	}
	if in := ra.a.StatusNow().Internet; in != nil {
		t.Fatalf("status with checks off: %+v", in)
	}
}

func labelOf(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetValue())
	}
	return strings.Join(parts, ",")
}
