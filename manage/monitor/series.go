package monitor

import (
	"strconv"
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Kinds of series.
const (
	KindInterface = "interface"
	KindTunnel    = "tunnel"
	KindApp       = "app"
	KindDevice    = "device" // WAN totals and health (cpu_pct, mem_used_pct, disk_used_pct, load1)
)

// Metrics. Rates are per second, computed from two successive reports.
const (
	MetricRxBps  = "rx_bps" // bits per second
	MetricTxBps  = "tx_bps"
	MetricRxPps  = "rx_pps" // packets per second
	MetricTxPps  = "tx_pps"
	MetricRTT    = "rtt_ms"
	MetricJitter = "jitter_ms"
	MetricLoss   = "loss_pct"
	MetricUp     = "up" // 1 up, 0 down
	MetricLinkUp = "link_up"
	MetricCPU    = "cpu_pct"       // busy share of all CPUs, 0..100
	MetricMemory = "mem_used_pct"  // 100 × (1 − available/total)
	MetricDisk   = "disk_used_pct" // the edge state directory's filesystem
	MetricLoad1  = "load1"         // 1-minute load average

	// A WAN's Internet check (interface series; only for interfaces that
	// report one).
	MetricInternetUp   = "internet_up"       // 1 reachable, 0 not
	MetricInternetRTT  = "internet_rtt_ms"   // RTT of the last answer, while reachable
	MetricInternetLoss = "internet_loss_pct" // unanswered echoes over the last 10 rounds
)

// MetricsOf lists the metrics a kind of series carries.
func MetricsOf(kind string) []string {
	switch kind {
	case KindInterface:
		return []string{MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps, MetricLinkUp, MetricInternetUp, MetricInternetRTT, MetricInternetLoss}
	case KindTunnel:
		return []string{MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps, MetricRTT, MetricJitter, MetricLoss, MetricUp}
	case KindApp:
		return []string{MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps}
	case KindDevice:
		// WAN totals (the sum of the WAN interfaces' rates), then health.
		return []string{MetricRxBps, MetricTxBps, MetricRxPps, MetricTxPps, MetricCPU, MetricMemory, MetricDisk, MetricLoad1}
	}
	return nil
}

// Point is one sample of one series.
type Point struct {
	Org    string
	Device string
	Kind   string
	Key    string // interface name, tunnel number, application id ("" unidentified), "" for device
	Metric string
	At     time.Time
	Value  float64
}

type counters struct{ rxB, txB, rxP, txP uint64 }

type lastReport struct {
	at time.Time
	c  map[string]counters // kind + "\x00" + key
}

// Rates turns successive stats reports of devices into points: counters
// become rates over the time between two reports (a counter that went
// down, e.g. after an edge restart, gives no rate that time), gauges are
// kept as they are. Safe for concurrent use.
type Rates struct {
	mu   sync.Mutex
	last map[string]lastReport // device id
}

// NewRates returns an empty converter.
func NewRates() *Rates { return &Rates{last: map[string]lastReport{}} }

// Forget drops what is remembered of a device.
func (r *Rates) Forget(device string) {
	r.mu.Lock()
	delete(r.last, device)
	r.mu.Unlock()
}

// Points converts one report received at at.
func (r *Rates) Points(org, device string, st devproto.Stats, at time.Time) []Point {
	at = at.UTC().Truncate(time.Second)
	cur := lastReport{at: at, c: make(map[string]counters, len(st.Interfaces)+len(st.Tunnels)+len(st.Apps))}
	r.mu.Lock()
	prev, havePrev := r.last[device]
	r.last[device] = cur
	r.mu.Unlock()
	dt := at.Sub(prev.at).Seconds()
	if !havePrev || dt <= 0 || dt > 3600 {
		havePrev = false
	}
	out := make([]Point, 0, 5*len(st.Interfaces)+8*len(st.Tunnels)+4*len(st.Apps))
	add := func(kind, key, metric string, v float64) {
		out = append(out, Point{Org: org, Device: device, Kind: kind, Key: key, Metric: metric, At: at, Value: v})
	}
	rates := func(kind, key string, c counters) {
		id := kind + "\x00" + key
		cur.c[id] = c
		if !havePrev {
			return
		}
		p, ok := prev.c[id]
		if !ok || c.rxB < p.rxB || c.txB < p.txB || c.rxP < p.rxP || c.txP < p.txP {
			return
		}
		add(kind, key, MetricRxBps, float64(c.rxB-p.rxB)*8/dt)
		add(kind, key, MetricTxBps, float64(c.txB-p.txB)*8/dt)
		add(kind, key, MetricRxPps, float64(c.rxP-p.rxP)/dt)
		add(kind, key, MetricTxPps, float64(c.txP-p.txP)/dt)
	}
	for _, i := range st.Interfaces {
		rates(KindInterface, i.Name, counters{i.RxBytes, i.TxBytes, i.RxPackets, i.TxPackets})
		add(KindInterface, i.Name, MetricLinkUp, b2f(i.LinkUp))
	}
	for _, t := range st.Tunnels {
		key := strconv.Itoa(t.Number)
		rates(KindTunnel, key, counters{t.RxBytes, t.TxBytes, t.RxPackets, t.TxPackets})
		add(KindTunnel, key, MetricUp, b2f(t.Up))
		add(KindTunnel, key, MetricLoss, t.LossPct)
		if t.Up {
			add(KindTunnel, key, MetricRTT, t.RTTMillis)
			add(KindTunnel, key, MetricJitter, t.JitterMs)
		}
	}
	for _, a := range st.Apps {
		rates(KindApp, a.ID, counters{a.RxBytes, a.TxBytes, a.RxPackets, a.TxPackets})
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
