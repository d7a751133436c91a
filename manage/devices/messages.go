package devices

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Bounds on what a device may send.
const (
	maxJobOutput    = 1 << 20
	maxErrorText    = 4096
	maxStatsIfaces  = 1024
	maxStatsTunnels = 16384
)

var knownTypes = map[string]bool{
	devproto.TypeHello: true, devproto.TypeApplied: true, devproto.TypeStats: true, devproto.TypeEvent: true,
	devproto.TypeJobResult: true, devproto.TypeWelcome: true, devproto.TypeConfig: true, devproto.TypeJob: true,
	devproto.TypePing: true, devproto.TypePong: true, devproto.TypeError: true, devproto.TypeInterfaces: true,
}

// readLoop reads the device's messages until the connection ends.
func (s *Service) readLoop(ctx context.Context, c *conn) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			switch {
			case websocket.CloseStatus(err) != -1:
				s.log.Debug("device closed its channel", "device", c.deviceID, "code", websocket.CloseStatus(err))
			case strings.Contains(err.Error(), "read limited"):
				s.metrics.fail("oversize")
				s.log.Warn("device sent a frame over the limit: disconnected", "device", c.deviceID, "limit", devproto.MaxFrame)
			default:
				s.log.Debug("device channel read ended", "device", c.deviceID, "err", err)
			}
			return
		}
		if typ != websocket.MessageText {
			s.protocolError(c, "", "binary_frame", "send JSON envelopes in text frames")
			continue
		}
		s.handle(ctx, c, data)
	}
}

// protocolError answers bad input with an ErrorMsg; the connection survives
// unless the device keeps sending garbage.
func (s *Service) protocolError(c *conn, id, code, msg string) {
	s.log.Info("bad message on the device channel", "device", c.deviceID, "code", code, "msg", msg)
	c.mu.Lock()
	now := s.now()
	if now.Sub(c.errsSince) > time.Minute {
		c.errs, c.errsSince = 0, now
	}
	c.errs++
	tooMany := c.errs > maxErrorsPerMinute
	c.mu.Unlock()
	c.sendError(id, code, msg, tooMany)
	if tooMany {
		c.close(websocket.StatusPolicyViolation, "too many bad messages")
	}
}

func decodeBody(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("the message has no body")
	}
	return json.Unmarshal(raw, dst)
}

func validVersion(v string) bool {
	if len(v) != 64 {
		return false
	}
	_, err := hex.DecodeString(v)
	return err == nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (s *Service) handle(ctx context.Context, c *conn, data []byte) {
	var env devproto.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		s.metrics.in("invalid")
		s.protocolError(c, "", "bad_json", "not a JSON envelope: "+truncate(err.Error(), 200))
		return
	}
	label := env.Type
	if !knownTypes[label] {
		label = "unknown"
	}
	s.metrics.in(label)
	if env.V != devproto.Version {
		s.metrics.fail("version")
		c.sendError(env.ID, "unsupported_version", "this manage speaks protocol version 1", true)
		c.close(StatusProtocol, "unsupported protocol version")
		return
	}
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	if !ready && env.Type != devproto.TypeHello && env.Type != devproto.TypePing && env.Type != devproto.TypePong {
		s.protocolError(c, env.ID, "hello_required", "send hello first")
		return
	}
	var err error
	switch env.Type {
	case devproto.TypeHello:
		err = s.onHello(ctx, c, env)
	case devproto.TypeApplied:
		err = s.onApplied(ctx, c, env)
	case devproto.TypeStats:
		err = s.onStats(ctx, c, env)
	case devproto.TypeEvent:
		err = s.onEvent(ctx, c, env)
	case devproto.TypeJobResult:
		err = s.onJobResult(ctx, c, env)
	case devproto.TypeInterfaces:
		err = s.onInterfaces(ctx, c, env)
	case devproto.TypePing:
		c.send(devproto.TypePong, env.ID, nil)
	case devproto.TypePong:
	case devproto.TypeError:
		var m devproto.ErrorMsg
		_ = json.Unmarshal(env.Body, &m)
		s.log.Warn("device reports an error", "device", c.deviceID, "code", truncate(m.Code, 64), "message", truncate(m.Message, maxErrorText))
	default:
		s.protocolError(c, env.ID, "unknown_type", "unknown message type "+truncate(env.Type, 64))
		return
	}
	var fe *fieldError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		s.protocolError(c, env.ID, "invalid", env.Type+": "+fe.Error())
	case errors.Is(err, errBadBody):
		s.protocolError(c, env.ID, "bad_body", env.Type+": "+truncate(err.Error(), 300))
	case errors.Is(err, store.ErrNotFound) && env.Type != devproto.TypeJobResult:
		// The device was deleted under us.
		c.close(StatusRevoked, "the device was deleted")
	default:
		if ctx.Err() == nil {
			s.log.Error("handling a device message", "device", c.deviceID, "type", env.Type, "err", err)
			c.sendError(env.ID, "internal", "manage could not process the message; it was logged", false)
		}
	}
}

var errBadBody = errors.New("bad message body")

func badBody(err error) error { return errors.Join(errBadBody, err) }

func (s *Service) onHello(ctx context.Context, c *conn, env devproto.Envelope) error {
	var h devproto.Hello
	if err := decodeBody(env.Body, &h); err != nil {
		return badBody(err)
	}
	rep, ferr := validateInfo("info", h.Info)
	if ferr != nil {
		return ferr
	}
	if h.AppliedVersion != "" && !validVersion(h.AppliedVersion) {
		return bad("applied_version", "want a hex SHA-256 or empty")
	}
	d, err := s.st.GetDevice(ctx, c.orgID, c.deviceID)
	if err != nil {
		return err
	}
	if h.Info.MachineID != d.MachineID {
		// Identity comes from the credential; a Hello for another machine
		// is refused, not believed.
		return bad("info.machine_id", "this credential belongs to machine %q", d.MachineID)
	}
	if err := s.st.SetDeviceReport(ctx, c.orgID, c.deviceID, rep); err != nil {
		return err
	}
	if h.AppliedVersion != "" && h.AppliedVersion != d.AppliedVersion {
		if err := s.st.ReportApplied(ctx, c.orgID, c.deviceID, store.AppliedReport{Version: h.AppliedVersion, OK: true}); err != nil {
			return err
		}
	}
	approved := d.Approval == store.ApprovalApproved
	if approved {
		// A (re)connecting edge may have restarted: fresh SAs for its
		// tunnels (see rekeyDevice).
		if err := s.rekeyDevice(ctx, c.orgID, c.deviceID); err != nil && ctx.Err() == nil {
			// Not fatal to the connection: the scheduler rotates later.
			s.log.Error("re-keying the tunnels of a connecting device", "org", c.orgID, "device", c.deviceID, "err", err)
		}
		if network.WANChanged(d.InterfaceConfig, d.Interfaces, rep.Interfaces) {
			s.DeviceChanged(c.orgID, "") // peers follow its new endpoint
		}
	}
	c.mu.Lock()
	c.ready, c.approved, c.applied = true, approved, h.AppliedVersion
	c.mu.Unlock()
	c.send(devproto.TypeWelcome, env.ID, s.welcome(c.deviceID, d.Approval))
	// Catch up: compile, push when the edge runs another version, run jobs.
	return s.reconcileDevice(ctx, c.orgID, c.deviceID, nil)
}

// onInterfaces stores a new interface report (a WAN's DHCP lease, a link
// going down). When a WAN's address, gateway or link changed, the whole
// organization is recompiled: the peers follow the new endpoint and the
// routes follow the tunnels that can be configured.
func (s *Service) onInterfaces(ctx context.Context, c *conn, env devproto.Envelope) error {
	var r devproto.InterfacesReport
	if err := decodeBody(env.Body, &r); err != nil {
		return badBody(err)
	}
	ifaces, ferr := validateInterfaces("interfaces", r.Interfaces)
	if ferr != nil {
		return ferr
	}
	d, err := s.st.GetDevice(ctx, c.orgID, c.deviceID)
	if err != nil {
		return err
	}
	if err := s.st.SetDeviceInterfaces(ctx, c.orgID, c.deviceID, ifaces); err != nil {
		return err
	}
	if d.Approval == store.ApprovalApproved && network.WANChanged(d.InterfaceConfig, d.Interfaces, ifaces) {
		s.log.Info("a WAN of the device changed: recompiling its organization", "org", c.orgID, "device", c.deviceID)
		s.DeviceChanged(c.orgID, "")
	}
	return nil
}

func (s *Service) welcome(deviceID, approval string) devproto.Welcome {
	return devproto.Welcome{DeviceID: deviceID, Approval: approval,
		HeartbeatSeconds: int(s.cfg.Heartbeat / time.Second), StatsEverySeconds: int(s.cfg.StatsEvery / time.Second)}
}

func (s *Service) onApplied(ctx context.Context, c *conn, env devproto.Envelope) error {
	var a devproto.Applied
	if err := decodeBody(env.Body, &a); err != nil {
		return badBody(err)
	}
	if !validVersion(a.Version) {
		return bad("version", "want the hex SHA-256 of the configuration")
	}
	if a.RolledBackTo != "" && !validVersion(a.RolledBackTo) {
		return bad("rolled_back_to", "want a hex SHA-256 or empty")
	}
	r := store.AppliedReport{Version: a.Version, OK: a.OK, Error: truncate(a.Error, maxErrorText), Running: a.RolledBackTo}
	if err := s.st.ReportApplied(ctx, c.orgID, c.deviceID, r); err != nil {
		return err
	}
	c.mu.Lock()
	if a.OK {
		c.applied = a.Version
	} else {
		c.applied = a.RolledBackTo
	}
	c.mu.Unlock()
	if a.OK {
		s.log.Info("device applied its configuration", "device", c.deviceID, "version", a.Version)
	} else {
		s.log.Warn("device failed to apply its configuration", "device", c.deviceID, "version", a.Version,
			"error", r.Error, "rolled_back_to", a.RolledBackTo)
	}
	return nil
}

func (s *Service) onStats(ctx context.Context, c *conn, env devproto.Envelope) error {
	var st devproto.Stats
	if err := decodeBody(env.Body, &st); err != nil {
		return badBody(err)
	}
	if len(st.Interfaces) > maxStatsIfaces || len(st.Tunnels) > maxStatsTunnels {
		return bad("stats", "too many entries (at most %d interfaces, %d tunnels)", maxStatsIfaces, maxStatsTunnels)
	}
	if ferr := validateHealth(st.Health); ferr != nil {
		return ferr
	}
	if ferr := validateInternet(st.Interfaces); ferr != nil {
		return ferr
	}
	at := s.now()
	s.stats.put(c.deviceID, st, at)
	s.observeStats(ctx, c, st, at)
	return nil
}

func (s *Service) onEvent(ctx context.Context, c *conn, env devproto.Envelope) error {
	var e devproto.Event
	if err := decodeBody(env.Body, &e); err != nil {
		return badBody(err)
	}
	if e.Kind == "" || len(e.Kind) > 64 || !printable(e.Kind) {
		return bad("kind", "want an event kind")
	}
	s.log.Info("device event", "org", c.orgID, "device", c.deviceID, "kind", e.Kind,
		"interface", truncate(e.Interface, 64), "message", truncate(e.Message, maxErrorText), "data", truncate(string(e.Data), maxErrorText))
	s.observeEvent(ctx, c, e)
	return nil
}

func (s *Service) onJobResult(ctx context.Context, c *conn, env devproto.Envelope) error {
	var r devproto.JobResult
	if err := decodeBody(env.Body, &r); err != nil {
		return badBody(err)
	}
	if r.ID == "" || len(r.ID) > 64 {
		return bad("id", "want the job id")
	}
	state := store.JobDone
	if !r.OK {
		state = store.JobFailed
	}
	err := s.st.FinishJob(ctx, c.orgID, c.deviceID, r.ID, state, truncate(r.Output, maxJobOutput), truncate(r.Error, maxErrorText), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return bad("id", "no running job %q of this device", r.ID)
	}
	if err != nil {
		return err
	}
	s.log.Info("job finished", "device", c.deviceID, "job", r.ID, "state", state)
	s.dispatchJob(ctx, c)
	return nil
}

// validateHealth checks a stats report's device health: percentages within
// 0..100, a load average within 0..1e6 (nil health is fine).
func validateHealth(h *devproto.DeviceHealth) *fieldError {
	if h == nil {
		return nil
	}
	for _, p := range []struct {
		f string
		v float64
	}{{"cpu_pct", h.CPUPct}, {"mem_used_pct", h.MemUsedPct}, {"disk_used_pct", h.DiskUsedPct}} {
		if !(p.v >= 0 && p.v <= 100) {
			return bad("stats.health."+p.f, "%v is not a percentage (0 to 100)", p.v)
		}
	}
	if !(h.Load1 >= 0 && h.Load1 <= 1e6) {
		return bad("stats.health.load1", "%v is not a load average (0 to 1e6)", h.Load1)
	}
	return nil
}

// validateInternet checks the Internet check results of a stats report:
// RTT within 0..1e6 ms, loss a percentage, a short printable target; the
// error text is cut to maxErrorText.
func validateInternet(ifs []devproto.InterfaceStats) *fieldError {
	for i := range ifs {
		n := ifs[i].Internet
		if n == nil {
			continue
		}
		f := fmt.Sprintf("stats.interfaces[%d].internet.", i)
		if !(n.RTTMillis >= 0 && n.RTTMillis <= 1e6) {
			return bad(f+"rtt_ms", "%v is not a round-trip time (0 to 1e6 ms)", n.RTTMillis)
		}
		if !(n.LossPct >= 0 && n.LossPct <= 100) {
			return bad(f+"loss_pct", "%v is not a percentage (0 to 100)", n.LossPct)
		}
		if len(n.Target) > 64 || !printable(n.Target) {
			return bad(f+"target", "want an address")
		}
		n.Error = truncate(n.Error, maxErrorText)
	}
	return nil
}
