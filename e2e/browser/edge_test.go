package browser

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// edge is a device speaking the real device protocol to manage: it
// registers with the organization token, holds its channel, applies every
// configuration (acknowledging it) and reports stats every second: its
// interfaces' counters, its WAN's Internet check (reachable unless cut
// off), its health (CPU, memory, disk, load), traffic per application
// (Zoom and unidentified) and every tunnel of its document as up with a
// fixed RTT (there is no data plane here, so the numbers are the device's
// claim, as a real edge's would be).
type edge struct {
	name, machine string
	wan           devproto.Interface
	id            string
	credential    string

	stop context.CancelFunc // closes the channel: the device goes offline

	mu       sync.Mutex
	tunnels  []int
	version  string
	bytes    uint64
	internet devproto.InternetStatus // its WAN's Internet check, as reported
}

// cutInternet makes the device report its WAN cut off from the Internet.
func (e *edge) cutInternet(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.internet = devproto.InternetStatus{Reachable: false, LossPct: 100, Since: time.Now().UTC(), Error: why}
}

// register posts the registration and returns the device id.
func (e *edge) register(ctx context.Context, hc *http.Client, base, token string) error {
	info := e.info()
	b, _ := json.Marshal(devproto.RegisterRequest{Token: token, Info: info})
	req, _ := http.NewRequestWithContext(ctx, "POST", base+devproto.PathRegister, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("registering %s: %w", e.name, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("registering %s: %d %s", e.name, res.StatusCode, raw)
	}
	var r devproto.RegisterResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	e.id, e.credential = r.DeviceID, r.Credential
	return nil
}

func (e *edge) info() devproto.DeviceInfo {
	return devproto.DeviceInfo{MachineID: e.machine, Hostname: e.name, OS: "Debian GNU/Linux 13", Versions: map[string]string{"edge": "0.9.0"},
		Interfaces: []devproto.Interface{e.wan, {Name: "eth1", MAC: "02:00:00:00:01:01", LinkUp: true, MTU: 1500}}}
}

// run holds the channel until ctx ends.
func (e *edge) run(ctx context.Context, t *testing.T, hc *http.Client, wsBase string) {
	ws, _, err := websocket.Dial(ctx, wsBase+devproto.PathChannel, &websocket.DialOptions{HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.credential}}})
	if err != nil {
		if ctx.Err() == nil {
			t.Errorf("%s: channel: %v", e.name, err)
		}
		return
	}
	defer ws.CloseNow()
	var wmu sync.Mutex
	send := func(typ string, body any) error {
		b, _ := json.Marshal(body)
		env, _ := json.Marshal(devproto.Envelope{V: devproto.Version, Type: typ, Time: time.Now(), Body: b})
		wmu.Lock()
		defer wmu.Unlock()
		return ws.Write(ctx, websocket.MessageText, env)
	}
	if err := send(devproto.TypeHello, devproto.Hello{Info: e.info()}); err != nil {
		return
	}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := send(devproto.TypeStats, e.stats()); err != nil {
					return
				}
			}
		}
	}()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var env devproto.Envelope
		if json.Unmarshal(b, &env) != nil {
			continue
		}
		switch env.Type {
		case devproto.TypeConfig:
			var c devproto.Config
			_ = json.Unmarshal(env.Body, &c)
			var doc struct {
				Tunnels []devproto.Tunnel `json:"tunnels"`
			}
			_ = json.Unmarshal(c.Doc, &doc)
			e.mu.Lock()
			e.tunnels = e.tunnels[:0]
			for _, tn := range doc.Tunnels {
				e.tunnels = append(e.tunnels, tn.Number)
			}
			e.version = c.Version
			e.mu.Unlock()
			_ = send(devproto.TypeApplied, devproto.Applied{Version: c.Version, OK: true})
			_ = send(devproto.TypeStats, e.stats())
		case devproto.TypePing:
			_ = send(devproto.TypePong, nil)
		case devproto.TypeJob:
			var j devproto.Job
			_ = json.Unmarshal(env.Body, &j)
			_ = send(devproto.TypeJobResult, devproto.JobResult{ID: j.ID, OK: true,
				Output: fmt.Sprintf("%s job %s %s: answered by the test device %s\n", j.Kind, j.ID, j.Args, e.name)})
		}
	}
}

func (e *edge) stats() devproto.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bytes += 125000     // 1 Mbit/s each way
	n := e.bytes / 125000 // reports so far
	inet := e.internet
	inet.CheckedAt = time.Now().UTC()
	s := devproto.Stats{Interfaces: []devproto.InterfaceStats{
		{Name: e.wan.Name, LinkUp: true, RxBytes: e.bytes, TxBytes: e.bytes / 2, RxPackets: e.bytes / 1000, TxPackets: e.bytes / 2000, Internet: &inet},
	}, Health: &devproto.DeviceHealth{CPUPct: 20 + float64(n%5), MemUsedPct: 41.5, MemTotalBytes: 2 << 30, DiskUsedPct: 63.25,
		Load1: 0.42, UptimeSeconds: 3*86400 + 4*3600 + n},
		Apps: []devproto.AppStats{{ID: "zoom", Flows: 3, RxBytes: n * 40000, TxBytes: n * 30000, RxPackets: n * 40, TxPackets: n * 30},
			{ID: "", Flows: 1, RxBytes: n * 1000, TxBytes: n * 500, RxPackets: n, TxPackets: n}}}
	for _, n := range e.tunnels {
		s.Tunnels = append(s.Tunnels, devproto.TunnelStats{Number: n, Up: true, RTTMillis: 12.5 + float64(n), JitterMs: 0.8, LossPct: 0})
	}
	return s
}

// insecureClient talks to the test server's self-signed certificate.
func insecureClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a throwaway server of this test
}

// wanOf is device i's WAN as it reports it (documentation prefixes:
// public addresses, so no STUN is needed for peers to reach it).
func wanOf(i int) devproto.Interface {
	addr := []string{"192.0.2.2/24", "198.51.100.2/24", "203.0.113.2/24"}[(i-1)%3]
	return devproto.Interface{Name: "eth0", MAC: fmt.Sprintf("02:00:00:00:00:%02x", i), Addresses: []string{addr}, LinkUp: true, MTU: 1500}
}
