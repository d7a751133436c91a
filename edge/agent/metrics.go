package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

type metrics struct {
	reg           *prometheus.Registry
	connected     prometheus.Gauge
	registered    prometheus.Gauge
	connects      prometheus.Counter
	registrations prometheus.Counter
	badMessages   prometheus.Counter
	received      *prometheus.CounterVec
	sent          *prometheus.CounterVec
	applies       *prometheus.CounterVec
	jobs          *prometheus.CounterVec
	appliedInfo   *prometheus.GaugeVec

	mu      sync.Mutex
	applied string

	// health keeps the previous CPU reading between stats reports.
	healthMu sync.Mutex
	health   sysinfo.HealthSampler
}

func newMetrics() *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		connected:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "trellis_edge_channel_connected", Help: "1 while the device channel to manage is up."}),
		registered:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "trellis_edge_registered", Help: "1 once the edge holds a device credential."}),
		connects:      prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_edge_channel_connects_total", Help: "Device channel connections established."}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_edge_registration_attempts_total", Help: "Registration attempts."}),
		badMessages:   prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_edge_bad_messages_total", Help: "Messages from manage refused as malformed or unknown."}),
		received:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_edge_messages_received_total", Help: "Channel messages received by type."}, []string{"type"}),
		sent:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_edge_messages_sent_total", Help: "Channel messages sent by type (outside the session's own heartbeats)."}, []string{"type"}),
		applies:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_edge_config_applies_total", Help: "Desired-state applications by result (ok, failed, rolled_back)."}, []string{"result"}),
		jobs:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_edge_jobs_total", Help: "Jobs run by outcome."}, []string{"ok"}),
		appliedInfo:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trellis_edge_config_applied_info", Help: "1 for the desired-state version running."}, []string{"version"}),
	}
	m.reg.MustRegister(m.connected, m.registered, m.connects, m.registrations, m.badMessages, m.received, m.sent, m.applies, m.jobs, m.appliedInfo)
	return m
}

func (m *metrics) setApplied(v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.applied != "" {
		m.appliedInfo.DeleteLabelValues(m.applied)
	}
	m.applied = v
	if v != "" {
		m.appliedInfo.WithLabelValues(v).Set(1)
	}
}

// metricsHandler serves /healthz, /metrics and the data plane's /status and
// /metrics under /dataplane/.
func (a *Agent) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{a.metrics.reg, a.dhcpGatherer(), a.internetGatherer()}, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /dataplane/", func(w http.ResponseWriter, r *http.Request) {
		e := a.dp.Engine()
		if e == nil {
			http.Error(w, "no data plane running (no tunnels configured)", http.StatusNotFound)
			return
		}
		http.StripPrefix("/dataplane", e.Handler()).ServeHTTP(w, r)
	})
	return mux
}

// ConfigView is what the control socket answers at /config.
type ConfigView struct {
	Version string          `json:"version"`
	Doc     json.RawMessage `json:"doc"`
}

// Status is what the control socket answers at /status.
type Status struct {
	DeviceID         string    `json:"device_id,omitempty"`
	OrgID            string    `json:"org_id,omitempty"`
	ManageURL        string    `json:"manage_url,omitempty"`
	Registered       bool      `json:"registered"`
	Approval         string    `json:"approval,omitempty"`
	Connected        bool      `json:"connected"`
	ConnectedSince   time.Time `json:"connected_since,omitzero"`
	RunningVersion   string    `json:"running_version,omitempty"`
	StoredVersion    string    `json:"stored_version,omitempty"`
	ProbationVersion string    `json:"probation_version,omitempty"`
	LastError        string    `json:"last_error,omitempty"`
	Tunnels          int       `json:"tunnels"`
	Version          string    `json:"version"`
	// Internet is the WANs' Internet checks (those with a verdict).
	Internet map[string]devproto.InternetStatus `json:"internet,omitempty"`
}

// StatusNow returns the agent's status.
func (a *Agent) StatusNow() Status {
	st := Status{Version: Version}
	if c, err := a.dir.LoadCredential(); err == nil {
		st.DeviceID, st.OrgID, st.ManageURL, st.Registered, st.Approval = c.DeviceID, c.OrgID, c.ManageURL, true, c.Approval
	}
	if d, err := a.dir.LoadDoc(); err == nil {
		st.StoredVersion = d.Version
	}
	a.mu.Lock()
	if a.approval != "" {
		st.Approval = a.approval
	}
	if a.conn != nil {
		st.Connected, st.ConnectedSince = true, a.connected
	}
	if a.probation != nil {
		st.ProbationVersion = a.probation.next.Version
	}
	st.LastError = a.lastErr
	a.mu.Unlock()
	if r := a.rec.Running(); r != nil {
		st.RunningVersion = r.Version
		st.Tunnels = len(r.Doc.Tunnels)
	}
	if in := a.internetStatus(); len(in) > 0 {
		st.Internet = in
	}
	return st
}

// controlHandler serves the local control socket: /status (Status),
// /config (the running document), /tunnels (data plane status),
// /interfaces (what the agent last reported), /leases (the DHCP servers'
// leases).
func (a *Agent) controlHandler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.StatusNow()) })
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		run := a.rec.Running()
		if run == nil {
			http.Error(w, "no configuration running", http.StatusNotFound)
			return
		}
		writeJSON(w, ConfigView{Version: run.Version, Doc: run.Raw})
	})
	mux.HandleFunc("GET /tunnels", func(w http.ResponseWriter, r *http.Request) {
		e := a.dp.Engine()
		if e == nil {
			writeJSON(w, dataplane.Status{})
			return
		}
		writeJSON(w, e.Status())
	})
	mux.HandleFunc("GET /leases", func(w http.ResponseWriter, r *http.Request) {
		ls := a.dhcpLeases()
		if ls == nil {
			ls = []devproto.Lease{}
		}
		writeJSON(w, ls)
	})
	return mux
}

// internetGatherer gathers the Internet check metrics of the agent's
// current run.
func (a *Agent) internetGatherer() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newInternetCollector(a))
	return reg
}

// collectStats gathers interface and tunnel counters (with the WANs'
// Internet checks) and the DHCP servers' leases.
func (a *Agent) collectStats() devproto.Stats {
	var st devproto.Stats
	st.Leases = a.dhcpLeases()
	st.Health = a.healthNow()
	ifs, err := sysinfoCounters()
	if err == nil {
		withInternet(ifs, a.internetStatus())
		st.Interfaces = ifs
	}
	if e := a.dp.Engine(); e != nil {
		est := e.Status()
		for _, ap := range est.Apps {
			if ap.Flows == 0 && ap.TxPackets == 0 && ap.RxPackets == 0 {
				continue
			}
			st.Apps = append(st.Apps, devproto.AppStats{ID: ap.ID, Flows: ap.Flows, RxBytes: ap.RxBytes, TxBytes: ap.TxBytes,
				RxPackets: ap.RxPackets, TxPackets: ap.TxPackets})
		}
		for _, t := range est.Tunnels {
			var drops uint64
			for _, n := range t.Drops {
				drops += n
			}
			ts := devproto.TunnelStats{
				Up: t.Up, RTTMillis: t.RTTMillis, JitterMs: t.JitterMs, LossPct: t.Loss * 100,
				RxBytes: t.RxBytes, TxBytes: t.TxBytes, RxPackets: t.RxPackets, TxPackets: t.TxPackets, Drops: drops,
				Remote: t.Remote, Learned: t.Learned,
			}
			ts.Number = int(t.VNI)
			st.Tunnels = append(st.Tunnels, ts)
		}
	}
	return st
}

// healthNow samples the box's resource use (disk: the state directory's
// filesystem). Parts that could not be read are logged and left zero; nil
// when nothing at all could be read.
func (a *Agent) healthNow() *devproto.DeviceHealth {
	m := a.metrics
	if m == nil { // a partly built Agent (tests of single appliers)
		return nil
	}
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	if a.dir != nil {
		m.health.DiskPath = a.dir.Path()
	}
	h, err := m.health.Sample()
	if err != nil && a.log != nil {
		a.log.Debug("device health partly unreadable", "err", err)
		if h == (devproto.DeviceHealth{}) {
			return nil
		}
	}
	return &h
}
