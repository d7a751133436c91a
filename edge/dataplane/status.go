package dataplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TunnelStatus is the observable state of one tunnel.
type TunnelStatus struct {
	Name string `json:"name"`
	Site string `json:"site"`
	VNI  uint32 `json:"vni"`
	WAN  string `json:"wan"`
	// Remote is the peer endpoint in use; Configured the one from the
	// configuration. Learned is true when Remote was learned from
	// authenticated packets (symmetric NAT, CGNAT) and differs from
	// Configured; Learns counts the switches.
	Remote     string `json:"remote"`
	Configured string `json:"configured"`
	Learned    bool   `json:"learned"`
	Learns     uint64 `json:"learns"`
	Local      string `json:"local"`
	Peer       string `json:"peer"`
	Up         bool   `json:"up"`
	// Punching is true while the tunnel hears nothing from its peer and
	// runs its hole punching cycle (see README, "Hole punching").
	Punching    bool              `json:"punching"`
	Active      bool              `json:"active"` // eligible for traffic now
	MTU         int               `json:"mtu"`
	RTTMillis   float64           `json:"rtt_ms"`
	JitterMs    float64           `json:"jitter_ms"`
	Loss        float64           `json:"loss"`
	ProbesSent  uint64            `json:"probes_sent"`
	ProbesRecv  uint64            `json:"probes_received"`
	TxPackets   uint64            `json:"tx_packets"`
	TxBytes     uint64            `json:"tx_bytes"`
	RxPackets   uint64            `json:"rx_packets"`
	RxBytes     uint64            `json:"rx_bytes"`
	Drops       map[string]uint64 `json:"drops"`
	OutboundSPI uint32            `json:"outbound_spi"`
	OutboundSeq uint64            `json:"outbound_seq"`
	InboundSPIs []uint32          `json:"inbound_spis"`
}

// Status is the observable state of the data plane.
type Status struct {
	TUN     string            `json:"tun"`
	MTU     int               `json:"mtu"`
	Routes  int               `json:"routes"`
	Tunnels []TunnelStatus    `json:"tunnels"`
	Drops   map[string]uint64 `json:"drops"` // not attributable to a tunnel
	// WANs are the open WAN (tunnel) sockets; WANErrors the configured
	// WANs whose socket could not be opened, with the reason.
	WANs      []WANSocket       `json:"wans"`
	WANErrors map[string]string `json:"wan_errors,omitempty"`
	STUN      STUNCounters      `json:"stun"`
	// Apps count traffic per application ("" is unidentified traffic),
	// sorted by id; Flows describes the flow table; PathRules shows the
	// tunnels each path rule uses now, per site.
	Apps      []AppStatus    `json:"apps"`
	Flows     FlowStatus     `json:"flows"`
	PathRules []RuleStatus   `json:"path_rules"`
	QoS       []WANQoSStatus `json:"qos,omitempty"`
}

// AppStatus counts one application's traffic since the engine started:
// tx is LAN to tunnel, rx tunnel to LAN.
type AppStatus struct {
	ID        string `json:"id"`
	Flows     uint64 `json:"flows"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

// FlowStatus describes the flow table.
type FlowStatus struct {
	Active   int    `json:"active"`
	Capacity int    `json:"capacity"`
	Created  uint64 `json:"created"`
	Evicted  uint64 `json:"evicted"`
}

// RuleStatus is one path rule and, per site, the tunnels that carry its
// flows now (none: its fallback applies).
type RuleStatus struct {
	ID      string              `json:"id"`
	Mode    string              `json:"mode"`
	Block   bool                `json:"block,omitempty"`
	Tunnels map[string][]string `json:"tunnels,omitempty"`
}

func dropMap(c *counters) map[string]uint64 {
	m := make(map[string]uint64, numDropReasons)
	for r := DropReason(0); r < numDropReasons; r++ {
		m[r.String()] = c.drops[r].Load()
	}
	return m
}

// Status returns a consistent view of counters and probe results.
func (e *Engine) Status() Status {
	snap := e.snap.Load()
	st := Status{TUN: e.tunCfg.Name, MTU: e.MTU(), Routes: len(snap.cfg.Routes), Drops: dropMap(&e.global),
		WANs: e.WANSockets(), WANErrors: snap.wanErrors(), STUN: e.stunTx.counters()}
	for _, t := range snap.tunnels {
		t.probeMu.Lock()
		ps := t.probe.stats()
		punching := t.punch.punching()
		t.probeMu.Unlock()
		sas := t.sas.Load()
		rem := t.remote.Load()
		active := false
		if s := snap.sites[t.cfg.Site]; s != nil {
			if act := s.active.Load(); act != nil {
				for _, a := range *act {
					active = active || a == t
				}
			}
		}
		ts := TunnelStatus{
			Name: t.cfg.Name, Site: t.cfg.Site, VNI: t.cfg.VNI, WAN: t.wan.key.String(),
			Remote: rem.ap.String(), Configured: rem.conf.String(), Learned: rem.learned, Learns: t.learns.Load(),
			Local: t.cfg.Local.String(), Peer: t.cfg.Peer.String(),
			Up: t.up.Load(), Punching: punching, Active: active, MTU: t.maxInner,
			RTTMillis: ms(ps.RTT), JitterMs: ms(ps.Jitter), Loss: ps.Loss,
			ProbesSent: ps.Sent, ProbesRecv: ps.Received,
			TxPackets: t.txPackets.Load(), TxBytes: t.txBytes.Load(),
			RxPackets: t.rxPackets.Load(), RxBytes: t.rxBytes.Load(),
			Drops: dropMap(&t.counters), OutboundSPI: sas.out.SPI(), OutboundSeq: sas.out.SentSeq(),
		}
		for _, in := range sas.in {
			ts.InboundSPIs = append(ts.InboundSPIs, in.sa.SPI())
		}
		st.Tunnels = append(st.Tunnels, ts)
	}
	sort.Slice(st.Tunnels, func(i, j int) bool { return st.Tunnels[i].Name < st.Tunnels[j].Name })
	st.Apps = e.appsStatus()
	if ft := snap.flows; ft != nil {
		st.Flows = FlowStatus{Active: ft.active(time.Now().UnixNano()), Capacity: ft.capacity, Created: ft.created.Load(), Evicted: ft.evicted.Load()}
	}
	if snap.pol != nil {
		for i := 0; i < snap.pol.pol.NumRules(); i++ {
			r := snap.pol.pol.Rule(i)
			rs := RuleStatus{ID: r.ID, Mode: r.Mode.String(), Block: r.Block}
			if !r.Block {
				rs.Tunnels = map[string][]string{}
				for name, s := range snap.sites {
					var names []string
					if sel := s.rules[i].Load(); sel != nil {
						for _, t := range *sel {
							names = append(names, t.cfg.Name)
						}
					}
					sort.Strings(names)
					rs.Tunnels[name] = names
				}
			}
			st.PathRules = append(st.PathRules, rs)
		}
	}
	st.QoS = e.qosStatus(snap)
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Handler serves /status (JSON), /metrics (Prometheus) and /healthz.
func (e *Engine) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{e: e})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e.Status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if e.closed.Load() {
			http.Error(w, "stopped", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

var (
	tunnelLabels = []string{"tunnel", "site"}
	descPackets  = prometheus.NewDesc("trellis_dataplane_tunnel_packets_total", "Packets carried by a tunnel.", append(tunnelLabels, "direction"), nil)
	descBytes    = prometheus.NewDesc("trellis_dataplane_tunnel_bytes_total", "Bytes of original packets carried by a tunnel.", append(tunnelLabels, "direction"), nil)
	descDrops    = prometheus.NewDesc("trellis_dataplane_tunnel_drops_total", "Packets dropped on a tunnel, by reason.", append(tunnelLabels, "reason"), nil)
	descUp       = prometheus.NewDesc("trellis_dataplane_tunnel_up", "1 if the tunnel answers probes.", tunnelLabels, nil)
	descRTT      = prometheus.NewDesc("trellis_dataplane_tunnel_rtt_seconds", "Mean probe RTT over the window.", tunnelLabels, nil)
	descJitter   = prometheus.NewDesc("trellis_dataplane_tunnel_jitter_seconds", "Mean probe jitter over the window.", tunnelLabels, nil)
	descLoss     = prometheus.NewDesc("trellis_dataplane_tunnel_loss_ratio", "Probe loss over the window.", tunnelLabels, nil)
	descGlobal   = prometheus.NewDesc("trellis_dataplane_drops_total", "Packets dropped before a tunnel was known, by reason.", []string{"reason"}, nil)
	descLearned  = prometheus.NewDesc("trellis_dataplane_tunnel_endpoint_learned", "1 while the tunnel sends to an endpoint learned from authenticated packets instead of the configured one.", tunnelLabels, nil)
	descLearns   = prometheus.NewDesc("trellis_dataplane_tunnel_endpoint_learns_total", "Times the tunnel's remote endpoint moved to the source of authenticated packets.", tunnelLabels, nil)
	descAppBytes = prometheus.NewDesc("trellis_dataplane_app_bytes_total", "Bytes of original packets per identified application (\"\" unidentified).", []string{"app", "direction"}, nil)
	descAppFlows = prometheus.NewDesc("trellis_dataplane_app_flows_total", "Flows classified per application.", []string{"app"}, nil)
	descSTUN     = prometheus.NewDesc("trellis_dataplane_stun_messages_total", "STUN messages on the WAN sockets: requests sent, answers matched, stray messages ignored.", []string{"kind"}, nil)
)

type collector struct{ e *Engine }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descDrops, descUp, descRTT, descJitter, descLoss, descGlobal, descLearned, descLearns, descSTUN, descAppBytes, descAppFlows} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.Status()
	for _, t := range st.Tunnels {
		l := []string{t.Name, t.Site}
		counter := func(d *prometheus.Desc, v uint64, extra string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l, extra)...)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter(descPackets, t.TxPackets, "tx")
		counter(descPackets, t.RxPackets, "rx")
		counter(descBytes, t.TxBytes, "tx")
		counter(descBytes, t.RxBytes, "rx")
		for r, v := range t.Drops {
			counter(descDrops, v, r)
		}
		up := 0.0
		if t.Up {
			up = 1
		}
		gauge(descUp, up)
		gauge(descRTT, t.RTTMillis/1000)
		gauge(descJitter, t.JitterMs/1000)
		gauge(descLoss, t.Loss)
		learned := 0.0
		if t.Learned {
			learned = 1
		}
		gauge(descLearned, learned)
		ch <- prometheus.MustNewConstMetric(descLearns, prometheus.CounterValue, float64(t.Learns), l...)
	}
	for kind, v := range map[string]uint64{"request": st.STUN.Requests, "answer": st.STUN.Answers, "stray": st.STUN.Stray} {
		ch <- prometheus.MustNewConstMetric(descSTUN, prometheus.CounterValue, float64(v), kind)
	}
	for _, a := range st.Apps {
		ch <- prometheus.MustNewConstMetric(descAppBytes, prometheus.CounterValue, float64(a.TxBytes), a.ID, "tx")
		ch <- prometheus.MustNewConstMetric(descAppBytes, prometheus.CounterValue, float64(a.RxBytes), a.ID, "rx")
		ch <- prometheus.MustNewConstMetric(descAppFlows, prometheus.CounterValue, float64(a.Flows), a.ID)
	}
	for r, v := range st.Drops {
		ch <- prometheus.MustNewConstMetric(descGlobal, prometheus.CounterValue, float64(v), r)
	}
}

func (e *Engine) appsStatus() []AppStatus {
	e.cfgMu.Lock()
	var out []AppStatus
	for _, a := range e.apps {
		out = append(out, AppStatus{ID: a.id, Flows: a.flows.Load(), TxPackets: a.txPackets.Load(), TxBytes: a.txBytes.Load(),
			RxPackets: a.rxPackets.Load(), RxBytes: a.rxBytes.Load()})
	}
	e.cfgMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
