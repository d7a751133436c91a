package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

type config struct {
	n           int
	concurrency int
	db          string
	manageURL   string
	email       string
	password    string
	phaseLimit  time.Duration
	verbose     bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("trellis-loadsim", flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 1000, "number of simulated edges")
	fs.IntVar(&c.concurrency, "concurrency", 64, "parallel registrations, connections and API calls")
	fs.StringVar(&c.db, "db", "", "database of the manage child (default: SQLite in a temporary directory)")
	fs.StringVar(&c.manageURL, "manage-url", "", "use this running manage instead of starting one (memory is then not measured)")
	fs.StringVar(&c.email, "admin-email", "admin@trellis.local", "admin of --manage-url")
	fs.StringVar(&c.password, "admin-password", "", "password of --manage-url's admin")
	fs.DurationVar(&c.phaseLimit, "phase-timeout", 15*time.Minute, "give up on a phase after this long")
	fs.BoolVar(&c.verbose, "v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.n < 1 || c.n > 60000 {
		return c, errors.New("--n: want 1 to 60000 edges (one loopback address each)")
	}
	if c.concurrency < 1 {
		return c, errors.New("--concurrency must be positive")
	}
	if c.manageURL != "" && c.password == "" {
		return c, errors.New("--manage-url needs --admin-password")
	}
	return c, nil
}

// sim is one simulated edge.
type sim struct {
	i       int
	ip      net.IP
	machine string
	cred    string
	device  string
	ws      *websocket.Conn
	configs atomic.Int32
}

type configEvent struct {
	i  int
	at time.Time
}

type runner struct {
	cfg     config
	log     *slog.Logger
	base    string
	fp      string
	api     *http.Client
	session string
	org     string
	token   string
	sims    []*sim
	events  chan configEvent
	child   *child
}

// edgeIP is the loopback address of edge i: 127.1.0.1, 127.1.0.2, ...
func edgeIP(i int) net.IP {
	return net.IPv4(127, byte(1+i/(250*250)), byte(i/250%250), byte(i%250+1))
}

func pinnedTLS(fp string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, // verified against the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if fp == "" {
				return nil
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != fp {
				return errors.New("certificate does not match the pinned fingerprint")
			}
			return nil
		}}
}

// edgeClient is an HTTP client that dials from the edge's own address.
func (r *runner) edgeClient(ip net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: d.DialContext,
		TLSClientConfig: pinnedTLS(r.fp), ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 1}}
}

func (r *runner) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.session != "" {
		req.Header.Set("Authorization", "Bearer "+r.session)
	}
	res, err := r.api.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// parallel runs f(0..n-1) on c workers; the first error stops it.
func parallel(ctx context.Context, n, c int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// metric reads one sample of manage's /metrics ("" labels: the first).
func (r *runner) metric(ctx context.Context, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.base+"/metrics", nil)
	res, err := r.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

func (r *runner) waitMetric(ctx context.Context, name string, want float64) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.phaseLimit)
	defer cancel()
	for {
		v, err := r.metric(ctx, name)
		if err == nil && v >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s >= %v (last %v, %v): %w", name, want, v, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type memSample struct {
	rss        int64 // resident set after the collection
	live       int64 // heap objects plus goroutine stacks after a full GC
	goroutines int
}

// mem asks the manage child for its memory after a full garbage
// collection and reads its resident set size.
func (r *runner) mem(ctx context.Context) memSample {
	var m memSample
	if r.child == nil {
		return m
	}
	var g goMem
	req, _ := http.NewRequestWithContext(ctx, "GET", r.base+"/loadsim/mem", nil)
	if res, err := r.api.Do(req); err == nil {
		_ = json.NewDecoder(res.Body).Decode(&g)
		res.Body.Close()
	}
	m.live, m.goroutines = int64(g.HeapAlloc+g.StackInuse), g.Goroutines
	m.rss, _ = r.child.rss()
	return m
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	lvl := slog.LevelWarn
	if cfg.verbose {
		lvl = slog.LevelInfo
	}
	r := &runner{cfg: cfg, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})),
		events: make(chan configEvent, 3*cfg.n)}
	nofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raising the open files limit: %w", err)
	}
	if nofile < uint64(cfg.n)+256 {
		return fmt.Errorf("the open files limit is %d: too low for %d edges (raise the hard limit: ulimit -Hn)", nofile, cfg.n)
	}
	r.base = strings.TrimSuffix(cfg.manageURL, "/")
	if cfg.manageURL == "" {
		c, err := startManage(ctx, cfg.db, r.log, os.Stderr)
		if err != nil {
			return err
		}
		defer c.stop()
		r.child, r.base, r.fp, cfg.password = c, c.url, c.fingerprint, c.password
	}
	r.api = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: pinnedTLS(r.fp),
		MaxIdleConnsPerHost: cfg.concurrency}}

	// Log in, find the organization, make a token.
	var login struct{ Token string }
	if err := r.call(ctx, "POST", "/api/v1/auth/login", map[string]string{"email": cfg.email, "password": cfg.password}, &login); err != nil {
		return err
	}
	r.session = login.Token
	var orgs struct{ Items []struct{ ID string } }
	if err := r.call(ctx, "GET", "/api/v1/organizations?limit=1", nil, &orgs); err != nil || len(orgs.Items) == 0 {
		return fmt.Errorf("finding an organization: %v", err)
	}
	r.org = orgs.Items[0].ID
	var tok struct{ Token string }
	if err := r.call(ctx, "POST", "/api/v1/organizations/"+r.org+"/tokens", map[string]string{"name": "loadsim"}, &tok); err != nil {
		return err
	}
	r.token = tok.Token
	if p, err := orgtoken.Parse(tok.Token); err == nil && r.fp == "" {
		r.fp = p.Payload.FP
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	r.sims = make([]*sim, cfg.n)
	for i := range r.sims {
		r.sims[i] = &sim{i: i, ip: edgeIP(i), machine: fmt.Sprintf("loadsim-%s-%06d", runID, i)}
	}
	base := r.mem(ctx)
	rep := report{n: cfg.n, concurrency: cfg.concurrency, db: cfg.db, cpus: runtime.NumCPU(), base: base, measured: r.child != nil}
	defer r.closeAll()

	// 1. Registration.
	r.log.Info("registering", "n", cfg.n)
	t0 := time.Now()
	if err := parallel(ctx, cfg.n, cfg.concurrency, r.register); err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	rep.register = time.Since(t0)

	// 2. Connect every edge (pending: no configuration yet).
	r.log.Info("connecting", "n", cfg.n)
	t0 = time.Now()
	if err := parallel(ctx, cfg.n, cfg.concurrency, r.connect); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	rep.connect = time.Since(t0)
	if err := r.waitMetric(ctx, "trellis_devices_connected", float64(cfg.n)); err != nil {
		return err
	}
	rep.pending = r.mem(ctx)

	// 3. Approve every device: each gets its first configuration.
	r.log.Info("approving", "n", cfg.n)
	t0 = time.Now()
	if err := parallel(ctx, cfg.n, cfg.concurrency, func(ctx context.Context, i int) error {
		return r.call(ctx, "POST", "/api/v1/organizations/"+r.org+"/devices/"+r.sims[i].device+"/approve", nil, nil)
	}); err != nil {
		return fmt.Errorf("approving: %w", err)
	}
	rep.approveCalls = time.Since(t0)
	if rep.approveAll, _, err = r.collect(ctx, t0); err != nil {
		return err
	}
	if err := r.waitMetric(ctx, "trellis_devices_in_sync", float64(cfg.n)); err != nil {
		return err
	}
	rep.approveInSync = time.Since(t0)
	rep.synced = r.mem(ctx)

	// 4. One organization-wide change (a new path label) reaches everyone.
	r.log.Info("changing the configuration of every device")
	t0 = time.Now()
	if err := r.call(ctx, "POST", "/api/v1/organizations/"+r.org+"/path-labels", map[string]string{"name": "loadsim-" + runID, "type": "tunnel"}, nil); err != nil {
		return err
	}
	if rep.changeAll, rep.changeP50, err = r.collect(ctx, t0); err != nil {
		return err
	}
	if err := r.waitMetric(ctx, "trellis_devices_in_sync", float64(cfg.n)); err != nil {
		return err
	}
	rep.changeInSync = time.Since(t0)
	rep.write(out)
	return nil
}

// collect waits for one Config on every device and returns when the last
// and the median arrived, counted from t0.
func (r *runner) collect(ctx context.Context, t0 time.Time) (last, p50 time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.phaseLimit)
	defer cancel()
	seen := make(map[int]bool, r.cfg.n)
	var lat []time.Duration
	for len(seen) < r.cfg.n {
		select {
		case ev := <-r.events:
			if !seen[ev.i] {
				seen[ev.i] = true
				lat = append(lat, ev.at.Sub(t0))
			}
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("only %d of %d devices got their configuration: %w", len(seen), r.cfg.n, ctx.Err())
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)-1], lat[len(lat)/2], nil
}

func (r *runner) register(ctx context.Context, i int) error {
	s := r.sims[i]
	c := r.edgeClient(s.ip)
	defer c.CloseIdleConnections()
	req := devproto.RegisterRequest{Token: r.token, Info: devproto.DeviceInfo{MachineID: s.machine, Hostname: s.machine, OS: "loadsim",
		Versions: map[string]string{"edge": "loadsim"},
		Interfaces: []devproto.Interface{{Name: "eth0", MAC: fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", s.ip[12], s.ip[13], s.ip[14], s.ip[15]),
			Addresses: []string{s.ip.String() + "/8"}, LinkUp: true, MTU: 1500}}}}
	b, _ := json.Marshal(req)
	res, err := c.Post(r.base+devproto.PathRegister, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("edge %d: registration answered %d %s", i, res.StatusCode, bytes.TrimSpace(raw))
	}
	var rr devproto.RegisterResponse
	if err := json.Unmarshal(raw, &rr); err != nil {
		return err
	}
	s.cred, s.device = rr.Credential, rr.DeviceID
	return nil
}

func envelope(typ string, body any) []byte {
	env := devproto.Envelope{V: devproto.Version, Type: typ, Time: time.Now().UTC()}
	if body != nil {
		env.Body, _ = json.Marshal(body)
	}
	b, _ := json.Marshal(env)
	return b
}

// connect opens the edge's channel, says hello and waits for Welcome; a
// reader then answers configurations (applied) and jobs until the end.
func (r *runner) connect(ctx context.Context, i int) error {
	s := r.sims[i]
	c := r.edgeClient(s.ip)
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(r.base, "https")+devproto.PathChannel,
		&websocket.DialOptions{HTTPClient: c, HTTPHeader: http.Header{"Authorization": {"Bearer " + s.cred}}})
	if err != nil {
		return fmt.Errorf("edge %d: %w", i, err)
	}
	ws.SetReadLimit(devproto.MaxFrame)
	s.ws = ws
	hello := devproto.Hello{Info: devproto.DeviceInfo{MachineID: s.machine, Hostname: s.machine, OS: "loadsim"}}
	if err := ws.Write(ctx, websocket.MessageText, envelope(devproto.TypeHello, hello)); err != nil {
		return err
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		return fmt.Errorf("edge %d: waiting for welcome: %w", i, err)
	}
	var env devproto.Envelope
	if json.Unmarshal(b, &env) != nil || env.Type != devproto.TypeWelcome {
		return fmt.Errorf("edge %d: expected welcome, got %s", i, b)
	}
	go r.serve(s)
	return nil
}

func (r *runner) serve(s *sim) {
	ctx := context.Background()
	for {
		_, b, err := s.ws.Read(ctx)
		if err != nil {
			return
		}
		var env devproto.Envelope
		if json.Unmarshal(b, &env) != nil {
			continue
		}
		switch env.Type {
		case devproto.TypeConfig:
			at := time.Now()
			var cfg devproto.Config
			if json.Unmarshal(env.Body, &cfg) != nil {
				continue
			}
			s.configs.Add(1)
			r.events <- configEvent{i: s.i, at: at}
			_ = s.ws.Write(ctx, websocket.MessageText, envelope(devproto.TypeApplied, devproto.Applied{Version: cfg.Version, OK: true}))
		case devproto.TypeJob:
			var j devproto.Job
			if json.Unmarshal(env.Body, &j) == nil {
				_ = s.ws.Write(ctx, websocket.MessageText, envelope(devproto.TypeJobResult, devproto.JobResult{ID: j.ID, OK: true, Output: "simulated"}))
			}
		}
	}
}

func (r *runner) closeAll() {
	for _, s := range r.sims {
		if s != nil && s.ws != nil {
			_ = s.ws.CloseNow()
		}
	}
}

type report struct {
	n, concurrency                          int
	db                                      string
	cpus                                    int
	measured                                bool
	base, pending, synced                   memSample
	register, connect                       time.Duration
	approveCalls, approveAll, approveInSync time.Duration
	changeAll, changeP50, changeInSync      time.Duration
}

func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
}

func (p report) write(w io.Writer) {
	db := p.db
	if db == "" {
		db = "SQLite"
	} else if strings.HasPrefix(db, "postgres") {
		db = "PostgreSQL"
	}
	fmt.Fprintf(w, "## trellis-loadsim --n %d (%s, concurrency %d, %d CPUs)\n\n", p.n, db, p.concurrency, p.cpus)
	fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(w, "| registration | %d in %v = **%s** |\n", p.n, p.register.Round(time.Millisecond), rate(p.n, p.register))
	fmt.Fprintf(w, "| channel connect + hello/welcome | %d in %v = %s |\n", p.n, p.connect.Round(time.Millisecond), rate(p.n, p.connect))
	if p.measured {
		per := func(m memSample) string {
			return fmt.Sprintf("RSS %s (**%s/device**); live heap + stacks %s (%s/device); %d goroutines", mib(m.rss), kib((m.rss-p.base.rss)/int64(p.n)),
				mib(m.live), kib((m.live-p.base.live)/int64(p.n)), m.goroutines)
		}
		fmt.Fprintf(w, "| manage memory before (after GC) | RSS %s, live heap + stacks %s, %d goroutines |\n", mib(p.base.rss), mib(p.base.live), p.base.goroutines)
		fmt.Fprintf(w, "| manage memory, %d connected (pending) | %s |\n", p.n, per(p.pending))
		fmt.Fprintf(w, "| manage memory, %d connected, approved, in sync | %s |\n", p.n, per(p.synced))
	}
	fmt.Fprintf(w, "| approve all (%d API calls) | %v |\n", p.n, p.approveCalls.Round(time.Millisecond))
	fmt.Fprintf(w, "| approval → last device got its first config | %v; all in sync (manage's view) after %v |\n",
		p.approveAll.Round(time.Millisecond), p.approveInSync.Round(time.Millisecond))
	fmt.Fprintf(w, "| one organization-wide change → config at all %d | **%v** (median %v); all in sync after %v |\n",
		p.n, p.changeAll.Round(time.Millisecond), p.changeP50.Round(time.Millisecond), p.changeInSync.Round(time.Millisecond))
	fmt.Fprintln(w)
}
