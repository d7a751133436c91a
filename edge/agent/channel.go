package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/edge/sysinfo"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Error codes the edge sends in ErrorMsg.
const (
	ErrCodeBadMessage  = "bad_message"
	ErrCodeUnknownType = "unknown_type"
	ErrCodeVersion     = "unsupported_version"
)

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *Agent) deviceInfo() (devproto.DeviceInfo, error) {
	id, err := sysinfo.MachineID(a.opts.MachineID)
	if err != nil {
		return devproto.DeviceInfo{}, err
	}
	info, err := sysinfo.Info(id, map[string]string{"edge": Version, "protocol": fmt.Sprint(devproto.Version)})
	if err != nil {
		a.log.Warn("listing interfaces failed", "err", err)
	}
	info.Interfaces = a.markDHCP(info.Interfaces)
	a.noteReported(info.Interfaces)
	return info, nil
}

// connectLoop registers if needed, then keeps the channel up: connect,
// run the session, and reconnect with jittered exponential backoff.
func (a *Agent) connectLoop(ctx context.Context) error {
	cred, err := a.credential(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cred = cred
	a.mu.Unlock()
	b := Backoff{Min: a.opts.BackoffMin, Max: a.opts.BackoffMax}
	for {
		start := time.Now()
		err := a.session(ctx, cred)
		if ctx.Err() != nil {
			return nil
		}
		a.setErr(err)
		// A session that stayed up a while starts the backoff over.
		if time.Since(start) > 30*time.Second {
			b.Reset()
		}
		var re *RefusedError
		code := websocket.CloseStatus(err)
		if hint, ok := closeHints[code]; ok {
			a.log.Warn("manage closed the device channel: "+hint+"; reconnecting", "code", int(code), "err", err)
		} else if errors.As(err, &re) && (re.Status == http.StatusUnauthorized || re.Status == http.StatusForbidden) {
			a.log.Error("manage refused this device's credential (device deleted, or not yet approved); retrying — run `trellis-edge reset --yes` to register again if the device was deleted", "err", err)
		} else {
			a.log.Warn("device channel down; reconnecting", "err", err)
		}
		if err := b.WaitAtLeast(ctx, retryAfter(err)); err != nil {
			return nil
		}
	}
}

// closeHints explains manage's close codes (docs/devices.md).
var closeHints = map[websocket.StatusCode]string{
	4001:                            "another connection of this device took over (is this box cloned, sharing its state directory?)",
	4002:                            "the device was deleted or registered again elsewhere; its credential no longer works",
	4003:                            "this edge read its messages too slowly",
	4004:                            "manage does not speak this edge's protocol version: upgrade the edge",
	websocket.StatusGoingAway:       "manage is shutting down",
	websocket.StatusPolicyViolation: "policy (heartbeat missed or too many bad messages)",
	websocket.StatusMessageTooBig:   "a message was too large",
}

// session is one connection of the device channel.
type session struct {
	a            *Agent
	conn         *websocket.Conn
	lastRecv     atomic.Int64 // unix nanoseconds
	heartbeat    atomic.Int64 // nanoseconds
	statsEvery   atomic.Int64 // nanoseconds, 0 = off
	welcomed     atomic.Bool
	helloVersion string
}

func (a *Agent) session(ctx context.Context, cred state.Credential) error {
	hc, err := httpClient(cred.Fingerprint, 0)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	url := strings.TrimSuffix(cred.ManageURL, "/") + devproto.PathChannel
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + cred.Credential}, "User-Agent": {"trellis-edge/" + Version}},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != 0 {
			if resp.Body == nil {
				resp.Body = io.NopCloser(strings.NewReader(""))
			}
			return readRefusal(resp)
		}
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	conn.SetReadLimit(devproto.MaxFrame)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	s := &session{a: a, conn: conn}
	s.lastRecv.Store(time.Now().UnixNano())
	s.heartbeat.Store(int64(defaultHeartbeat))
	defer conn.CloseNow()

	info, err := a.deviceInfo()
	if err != nil {
		return err
	}
	applied := ""
	if r := a.rec.Running(); r != nil {
		applied = r.Version
	}
	s.helloVersion = applied
	if err := s.write(sctx, devproto.TypeHello, "", devproto.Hello{Info: info, AppliedVersion: applied}); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	a.log.Info("device channel connected", "manage", cred.ManageURL, "device_id", cred.DeviceID, "applied_version", applied)
	a.metrics.connects.Inc()
	a.metrics.connected.Set(1)
	defer a.metrics.connected.Set(0)
	a.mu.Lock()
	a.conn = conn
	a.connected = time.Now()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.conn == conn {
			a.conn = nil
		}
		a.mu.Unlock()
	}()

	s.flushOutbox(sctx)
	// The ticker reads the agent's reconciler and appliers, which the next
	// run replaces after a restart: the session waits for it to end.
	var tick sync.WaitGroup
	tick.Add(1)
	go func() {
		defer tick.Done()
		s.ticker(sctx, scancel)
	}()
	defer func() {
		scancel()
		tick.Wait()
	}()
	go func() {
		<-sctx.Done()
		if ctx.Err() != nil {
			// Shutting down: a proper close handshake.
			_ = conn.Close(websocket.StatusGoingAway, "edge shutting down")
			return
		}
		_ = conn.CloseNow()
	}()
	return s.readLoop(sctx)
}

// write sends one envelope on this session.
func (s *session) write(ctx context.Context, typ, id string, body any) error {
	env, err := envelope(typ, id, body)
	if err != nil {
		return err
	}
	return writeEnv(ctx, s.conn, env)
}

func envelope(typ, id string, body any) (devproto.Envelope, error) {
	env := devproto.Envelope{V: devproto.Version, Type: typ, ID: id, Time: time.Now().UTC()}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return env, fmt.Errorf("encoding %s: %w", typ, err)
		}
		env.Body = b
	}
	return env, nil
}

func writeEnv(ctx context.Context, conn *websocket.Conn, env devproto.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// send delivers a message to manage now if connected; when not (or when
// the write fails) messages with keep are queued for the next connection.
func (a *Agent) send(typ, id string, body any, keep bool) {
	env, err := envelope(typ, id, body)
	if err != nil {
		a.log.Error("encoding a message", "type", typ, "err", err)
		return
	}
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn != nil {
		if err := writeEnv(context.Background(), conn, env); err == nil {
			a.metrics.sent.WithLabelValues(typ).Inc()
			return
		}
	}
	if keep {
		a.mu.Lock()
		a.outbox = append(a.outbox, env)
		if len(a.outbox) > maxOutbox {
			a.outbox = a.outbox[len(a.outbox)-maxOutbox:]
		}
		a.mu.Unlock()
	}
}

// flushOutbox sends the queued messages after Welcome.
func (s *session) flushOutbox(ctx context.Context) {
	a := s.a
	a.mu.Lock()
	box := pruneOutbox(a.outbox, a.runningVersion())
	a.outbox = nil
	a.mu.Unlock()
	for i, env := range box {
		if err := writeEnv(ctx, s.conn, env); err != nil {
			a.mu.Lock()
			a.outbox = append(box[i:], a.outbox...)
			a.mu.Unlock()
			return
		}
	}
}

// ticker sends heartbeats and stats, and closes a silent connection.
func (s *session) ticker(ctx context.Context, cancel context.CancelFunc) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastPing, lastStats := time.Now(), time.Now()
	// A DHCP lease added or removed sends stats at the next tick, and so
	// does a tunnel going up or down (or appearing, or going away, or
	// answering another peer endpoint it learned): manage
	// learns tunnel states from stats only, and would otherwise follow a
	// tunnel's state a whole stats period (60 s) late. The first tick of a
	// session with tunnels sends their states too (manage's view after a
	// reconnection). So does a WAN's Internet check changing its verdict
	// (or reaching its first one).
	leases, leasesChanged := s.a.leaseChanges(), false
	var sentTunnels string  // tunnel states in the last stats sent
	var sentInternet string // WAN Internet verdicts in the last stats sent
	for {
		select {
		case <-ctx.Done():
			return
		case <-leases:
			leasesChanged = true
		case now := <-t.C:
			hb := time.Duration(s.heartbeat.Load())
			if now.Sub(time.Unix(0, s.lastRecv.Load())) > 3*hb {
				s.a.log.Warn("manage silent for three heartbeats; reconnecting", "heartbeat", hb)
				cancel()
				return
			}
			if now.Sub(lastPing) >= hb {
				lastPing = now
				_ = s.write(ctx, devproto.TypePing, newID(), nil)
			}
			every := time.Duration(s.statsEvery.Load())
			if every <= 0 {
				continue
			}
			tunnels := s.a.tunnelStates()
			internet := internetSignature(s.a.internetStatus())
			if leasesChanged || tunnels != sentTunnels || internet != sentInternet || now.Sub(lastStats) >= every {
				if tunnels != sentTunnels {
					s.a.log.Debug("tunnel states changed; sending stats now", "tunnels", tunnels)
				}
				if internet != sentInternet {
					s.a.log.Debug("WAN Internet verdicts changed; sending stats now", "internet", internet)
				}
				lastStats, leasesChanged = now, false
				st := s.a.collectStats()
				sentTunnels = tunnelSignature(st.Tunnels)
				sentInternet = internet
				_ = s.write(ctx, devproto.TypeStats, "", st)
			}
		}
	}
}

// readLoop reads and dispatches messages until the connection ends.
func (s *session) readLoop(ctx context.Context) error {
	for {
		// Reads are not bound to ctx (cancelling a read tears the
		// connection down at once); ending ctx closes the connection,
		// which ends the read.
		typ, data, err := s.conn.Read(context.WithoutCancel(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("session ended: %w", context.Cause(ctx))
			}
			return fmt.Errorf("reading from manage: %w", err)
		}
		s.lastRecv.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			s.refuse(ctx, "", ErrCodeBadMessage, "binary messages are not part of the protocol")
			continue
		}
		s.handle(ctx, data)
	}
}

func (s *session) refuse(ctx context.Context, id, code, msg string) {
	a := s.a
	a.metrics.badMessages.Inc()
	a.log.Warn("bad message from manage", "code", code, "err", msg)
	_ = s.write(ctx, devproto.TypeError, id, devproto.ErrorMsg{Code: code, Message: msg})
}

func decodeBody(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return errors.New("no body")
	}
	return json.Unmarshal(raw, v)
}

// handle dispatches one message; garbage is answered with an ErrorMsg and
// the connection stays up.
func (s *session) handle(ctx context.Context, data []byte) {
	a := s.a
	var env devproto.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		s.refuse(ctx, "", ErrCodeBadMessage, "not a JSON envelope: "+truncate(err.Error(), 200))
		return
	}
	if env.V != devproto.Version {
		s.refuse(ctx, env.ID, ErrCodeVersion, fmt.Sprintf("protocol version %d; this edge speaks %d", env.V, devproto.Version))
		return
	}
	a.metrics.received.WithLabelValues(knownType(env.Type)).Inc()
	switch env.Type {
	case devproto.TypeWelcome:
		var w devproto.Welcome
		if err := decodeBody(env.Body, &w); err != nil {
			s.refuse(ctx, env.ID, ErrCodeBadMessage, "welcome: "+truncate(err.Error(), 200))
			return
		}
		if w.HeartbeatSeconds > 0 {
			s.heartbeat.Store(int64(time.Duration(min(w.HeartbeatSeconds, 3600)) * time.Second))
		}
		if w.StatsEverySeconds > 0 {
			s.statsEvery.Store(int64(time.Duration(max(w.StatsEverySeconds, 5)) * time.Second))
		}
		a.mu.Lock()
		a.approval = w.Approval
		deviceID := a.cred.DeviceID
		a.mu.Unlock()
		if w.DeviceID != "" && w.DeviceID != deviceID {
			a.log.Warn("manage welcomed another device id", "want", deviceID, "got", w.DeviceID)
		}
		if w.Approval != "" && w.Approval != "approved" {
			a.log.Info("device is not approved yet; waiting for an admin", "approval", w.Approval)
		}
		s.welcomed.Store(true)
		a.confirmProbation(s.helloVersion)
	case devproto.TypeConfig:
		var c devproto.Config
		if err := decodeBody(env.Body, &c); err != nil {
			s.refuse(ctx, env.ID, ErrCodeBadMessage, "config: "+truncate(err.Error(), 200))
			return
		}
		// Only the newest document matters: replace a queued one.
		select {
		case <-a.configCh:
		default:
		}
		a.configCh <- c
	case devproto.TypeJob:
		var j devproto.Job
		if err := decodeBody(env.Body, &j); err != nil || j.ID == "" {
			if err == nil {
				err = errors.New("no job id")
			}
			s.refuse(ctx, env.ID, ErrCodeBadMessage, "job: "+truncate(err.Error(), 200))
			return
		}
		select {
		case a.jobCh <- j:
		default:
			a.send(devproto.TypeJobResult, "", devproto.JobResult{ID: j.ID, Error: "edge busy: too many queued jobs"}, true)
		}
	case devproto.TypePing:
		_ = s.write(ctx, devproto.TypePong, env.ID, nil)
	case devproto.TypePong:
		if env.ID != "" {
			a.confirmPing(env.ID)
		}
	case devproto.TypeError:
		var e devproto.ErrorMsg
		_ = decodeBody(env.Body, &e)
		a.log.Warn("manage reported an error", "code", e.Code, "message", truncate(e.Message, 500), "fatal", e.Fatal)
		if e.Fatal {
			s.conn.Close(websocket.StatusNormalClosure, "fatal error from manage")
		}
	default:
		s.refuse(ctx, env.ID, ErrCodeUnknownType, fmt.Sprintf("unknown message type %q", truncate(env.Type, 64)))
	}
}

func knownType(t string) string {
	switch t {
	case devproto.TypeWelcome, devproto.TypeConfig, devproto.TypeJob, devproto.TypePing, devproto.TypePong, devproto.TypeError:
		return t
	}
	return "other"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pruneOutbox drops queued Applied reports that no longer describe the
// edge (Hello already told manage the running version): only the last
// report consistent with the running version is kept, a success for it or
// a failure that left it running. Other messages are kept in order.
func pruneOutbox(box []devproto.Envelope, running string) []devproto.Envelope {
	last := -1
	for i, env := range box {
		if env.Type != devproto.TypeApplied {
			continue
		}
		var ap devproto.Applied
		if json.Unmarshal(env.Body, &ap) != nil {
			continue
		}
		if (ap.OK && ap.Version == running) || (!ap.OK && ap.RolledBackTo == running) {
			last = i
		}
	}
	out := make([]devproto.Envelope, 0, len(box))
	for i, env := range box {
		if env.Type != devproto.TypeApplied || i == last {
			out = append(out, env)
		}
	}
	return out
}

// tunnelStates returns the up/down state of every tunnel of the data
// plane as text ("" without tunnels), to compare with what stats last
// said.
func (a *Agent) tunnelStates() string {
	if a.dp == nil {
		return ""
	}
	e := a.dp.Engine()
	if e == nil {
		return ""
	}
	var ts []devproto.TunnelStats
	for _, t := range e.Status().Tunnels {
		ts = append(ts, devproto.TunnelStats{Number: int(t.VNI), Up: t.Up, Remote: t.Remote})
	}
	return tunnelSignature(ts)
}

// tunnelSignature is the tunnels' numbers, states and peer endpoints in
// use, sorted: "1:up@192.0.2.2:4789 2:down@…". A peer endpoint learned
// from authenticated packets (a NAT that moved) is news for manage too.
func tunnelSignature(ts []devproto.TunnelStats) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		state := "down"
		if t.Up {
			state = "up"
		}
		parts = append(parts, fmt.Sprintf("%d:%s@%s", t.Number, state, t.Remote))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
