package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
)

// The end-to-end test builds
//
//	hostA -- edgeA ==(two underlay links)== edgeB -- hostB
//
// in network namespaces, runs the real `trellis-edge dataplane` binary in
// each edge namespace, and checks ping, TCP, tshark decoding/decryption of
// the underlay and failover when one underlay link is cut.

type saKeys struct {
	spi       uint32
	transform string
	key, auth string
	esn       bool
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// inNS runs f with the calling OS thread in namespace ns; sockets created by
// f stay in that namespace.
func inNS(t *testing.T, ns string, f func() error) error {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	defer netns.Set(orig)
	return f()
}

type lab struct {
	t                *testing.T
	ha, ea, eb, hb   string
	bin              string
	dir              string
	statusA, statusB string
	saA1, saB1       saKeys // tunnel 1 (GCM): A->B and B->A
	saA2, saB2       saKeys // tunnel 2 (CBC)
	procs            map[string]*exec.Cmd
}

// writeConfigs writes both edges' configuration files. aOut[i] is edge A's
// outbound SA on tunnel i+1 (edge B's inbound unless a rekey is under way),
// and so on.
func (l *lab) writeConfigs(t *testing.T, aOut, aIn, bOut, bIn [2]saKeys) {
	t.Helper()
	a := edgeConfig("B", [2]string{"172.16.2.0/24", "fd00:2::/64"}, [2][2]string{{"tdpw1a", "192.0.2.1"}, {"tdpw2a", "198.51.100.1"}},
		[2]string{"192.0.2.2", "198.51.100.2"}, [2][2]string{{"10.100.0.0", "10.100.0.1"}, {"10.100.0.2", "10.100.0.3"}},
		[2][2]saKeys{{aOut[0], aIn[0]}, {aOut[1], aIn[1]}})
	b := edgeConfig("A", [2]string{"172.16.1.0/24", "fd00:1::/64"}, [2][2]string{{"tdpw1b", "192.0.2.2"}, {"tdpw2b", "198.51.100.2"}},
		[2]string{"192.0.2.1", "198.51.100.1"}, [2][2]string{{"10.100.0.1", "10.100.0.0"}, {"10.100.0.3", "10.100.0.2"}},
		[2][2]saKeys{{bOut[0], bIn[0]}, {bOut[1], bIn[1]}})
	for name, cfg := range map[string][]byte{"A": a, "B": b} {
		if err := os.WriteFile(filepath.Join(l.dir, name+".json"), cfg, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// reload sends SIGHUP to both edges and waits until both report the
// expected outbound SPIs.
func (l *lab) reload(t *testing.T, wantA, wantB [2]uint32) {
	t.Helper()
	for _, name := range []string{"A", "B"} {
		if err := l.procs[name].Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP to edge %s: %v", name, err)
		}
	}
	waitFor(t, 10*time.Second, "configuration reload", func() bool {
		for sock, want := range map[string][2]uint32{l.statusA: wantA, l.statusB: wantB} {
			for i, tu := range l.status(t, sock).Tunnels {
				if tu.OutboundSPI != want[i] {
					return false
				}
			}
		}
		return true
	})
}

func TestEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("end-to-end data plane test needs root (network namespaces, TUN devices)")
	}
	for _, tool := range []string{"ip", "tshark", "dumpcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("end-to-end data plane test needs %s (run scripts/install-deps.sh)", tool)
		}
	}
	l := setupLab(t)

	// Ping across the tunnels.
	out := run(t, append(append([]string{"ip", "netns", "exec", l.ha}, pingCmd(t)...), "-c", "3", "-W", "3", "172.16.2.2")...)
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping hostA -> hostB lost packets:\n%s", out)
	}

	// IPv6 is carried too (GRE protocol 0x86DD).
	out = run(t, append(append([]string{"ip", "netns", "exec", l.ha}, pingCmd(t)...), "-c", "3", "-W", "3", "fd00:2::2")...)
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("IPv6 ping hostA -> hostB lost packets:\n%s", out)
	}

	// Capture the underlay on edge A while TCP and probes flow.
	pcap := filepath.Join(l.dir, "underlay.pcap")
	capCtx, capCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer capCancel()
	capCmd := exec.CommandContext(capCtx, "ip", "netns", "exec", l.ea, "dumpcap", "-q", "-i", "tdpw1a", "-i", "tdpw2a", "-w", pcap, "-a", "duration:8")
	capCmd.Stderr = io.Discard
	if err := capCmd.Start(); err != nil {
		t.Fatalf("starting dumpcap: %v", err)
	}
	// dumpcap writes the file header once it captures.
	waitFor(t, 20*time.Second, "dumpcap to start capturing", func() bool {
		fi, err := os.Stat(pcap)
		return err == nil && fi.Size() > 0
	})
	time.Sleep(500 * time.Millisecond)
	srv := l.listen(t)
	conn := l.dial(t)
	defer conn.Close()
	echoBulk(t, conn, 2<<20)
	run(t, append(append([]string{"ip", "netns", "exec", l.ha}, pingCmd(t)...), "-c", "2", "-W", "3", "172.16.2.2")...)
	if err := capCmd.Wait(); err != nil && capCtx.Err() != nil {
		t.Fatalf("tshark capture: %v", err)
	}
	l.checkTshark(t, pcap)

	// Failover: keep a TCP session busy, cut the underlay link its tunnel
	// uses, and require the session to keep moving data.
	var moved atomic.Int64
	stop := make(chan struct{})
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		chunk := bytes.Repeat([]byte("trellis-failover."), 64)
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Write(chunk); err != nil {
				errc <- fmt.Errorf("write: %w", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() { // reader
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := conn.Read(buf)
			moved.Add(int64(n))
			if err != nil {
				select {
				case <-stop:
				default:
					errc <- fmt.Errorf("read: %w", err)
				}
				return
			}
		}
	}()
	waitFor(t, 20*time.Second, "data on the session", func() bool { return moved.Load() > 100<<10 })
	before := l.status(t, l.statusA)
	time.Sleep(time.Second)
	during := l.status(t, l.statusA)
	busy := busiestTunnel(before, during)
	link := map[string]string{"t1": "tdpw1a", "t2": "tdpw2a"}[busy]
	t.Logf("session uses tunnel %s; cutting %s", busy, link)
	run(t, "ip", "-n", l.ea, "link", "set", link, "down")
	waitFor(t, 20*time.Second, "tunnel "+busy+" marked down on edge A", func() bool {
		for _, tu := range l.status(t, l.statusA).Tunnels {
			if tu.Name == busy {
				return !tu.Up
			}
		}
		return false
	})
	mark := moved.Load()
	waitFor(t, 30*time.Second, "the session to move data over the other tunnel", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("TCP session broke during failover: %v", err)
		default:
		}
		return moved.Load() > mark+200<<10
	})
	// Rekey every SA while the session runs, in two steps as a controller
	// would: first both sides add the new inbound SAs (the old ones stay
	// valid for the grace period), then both switch their outbound SAs.
	rekey := func(k saKeys) saKeys {
		k.spi += 0x100
		k.key = randHex(t, len(k.key)/2)
		if k.auth != "" {
			k.auth = randHex(t, 32)
		}
		return k
	}
	oldA, oldB := [2]saKeys{l.saA1, l.saA2}, [2]saKeys{l.saB1, l.saB2}
	newA, newB := [2]saKeys{rekey(l.saA1), rekey(l.saA2)}, [2]saKeys{rekey(l.saB1), rekey(l.saB2)}
	l.writeConfigs(t, oldA, newB, oldB, newA)
	l.reload(t, [2]uint32{oldA[0].spi, oldA[1].spi}, [2]uint32{oldB[0].spi, oldB[1].spi})
	time.Sleep(time.Second) // let both edges take the new inbound SAs
	l.writeConfigs(t, newA, newB, newB, newA)
	l.reload(t, [2]uint32{newA[0].spi, newA[1].spi}, [2]uint32{newB[0].spi, newB[1].spi})
	mark = moved.Load()
	waitFor(t, 20*time.Second, "the session to move data with the new SAs", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("TCP session broke during rekey: %v", err)
		default:
		}
		return moved.Load() > mark+200<<10
	})
	for _, sock := range []string{l.statusA, l.statusB} {
		for _, tu := range l.status(t, sock).Tunnels {
			if len(tu.InboundSPIs) != 2 {
				t.Errorf("tunnel %s: inbound SPIs %x, want the new and (in grace) the old one", tu.Name, tu.InboundSPIs)
			}
			if tu.Drops["no_sa"] != 0 {
				t.Errorf("tunnel %s dropped %d packets for no_sa during the rekey", tu.Name, tu.Drops["no_sa"])
			}
		}
	}

	close(stop)
	conn.Close()
	wg.Wait()
	srv.Close()
	after := l.status(t, l.statusA)
	other := map[string]string{"t1": "t2", "t2": "t1"}[busy]
	if txOf(after, other) <= txOf(during, other)+100 {
		t.Fatalf("tunnel %s carried no traffic after failover (tx %d -> %d)", other, txOf(during, other), txOf(after, other))
	}
	for _, st := range []dataplane.Status{after, l.status(t, l.statusB)} {
		for _, tu := range st.Tunnels {
			for _, r := range []string{"auth", "replay", "malformed"} {
				if tu.Drops[r] != 0 {
					t.Errorf("tunnel %s dropped %d packets for %s", tu.Name, tu.Drops[r], r)
				}
			}
		}
	}
}

// pingCmd returns iputils ping, or BusyBox's (scripts/install-deps.sh
// installs busybox) where ping is missing.
func pingCmd(t *testing.T) []string {
	if _, err := exec.LookPath("ping"); err == nil {
		return []string{"ping"}
	}
	if _, err := exec.LookPath("busybox"); err == nil {
		return []string{"busybox", "ping"}
	}
	t.Skip("needs ping (iputils-ping or busybox)")
	return nil
}

func txOf(s dataplane.Status, name string) uint64 {
	for _, t := range s.Tunnels {
		if t.Name == name {
			return t.TxPackets
		}
	}
	return 0
}

func busiestTunnel(a, b dataplane.Status) string {
	best, bestD := "", uint64(0)
	for _, t := range b.Tunnels {
		if d := t.TxPackets - txOf(a, t.Name); best == "" || d > bestD {
			best, bestD = t.Name, d
		}
	}
	return best
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func echoBulk(t *testing.T, conn net.Conn, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	defer conn.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := conn.Write(data); errc <- err }()
	got := make([]byte, n)
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading echoed data: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing data: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed data differs")
	}
}

func (l *lab) listen(t *testing.T) net.Listener {
	var ln net.Listener
	if err := inNS(t, l.hb, func() (err error) { ln, err = net.Listen("tcp4", "172.16.2.2:5001"); return err }); err != nil {
		t.Fatalf("listening in hostB: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln
}

func (l *lab) dial(t *testing.T) net.Conn {
	var c net.Conn
	if err := inNS(t, l.ha, func() (err error) {
		c, err = net.DialTimeout("tcp4", "172.16.2.2:5001", 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connecting hostA -> hostB: %v", err)
	}
	return c
}

func (l *lab) status(t *testing.T, sock string) dataplane.Status {
	t.Helper()
	st, err := tryStatus(sock)
	if err != nil {
		t.Fatalf("status of %s: %v", sock, err)
	}
	return st
}

func tryStatus(sock string) (dataplane.Status, error) {
	var st dataplane.Status
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://edge/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (l *lab) checkTshark(t *testing.T, pcap string) {
	t.Helper()
	// Without keys: the framing must decode down to ESP.
	out := run(t, "tshark", "-r", pcap, "-T", "fields", "-e", "frame.protocols")
	if !strings.Contains(out, "udp:vxlan:eth:ethertype:ip:esp") {
		t.Fatalf("tshark did not decode udp/vxlan/eth/ip/esp:\n%.2000s", out)
	}
	// With the SA table: ESP must decrypt to GRE / IP for both transforms.
	args := []string{"tshark", "-r", pcap, "-o", "esp.enable_encryption_decode:TRUE"}
	type dir struct {
		src, dst string
		sa       saKeys
	}
	for _, d := range []dir{{"10.100.0.0", "10.100.0.1", l.saA1}, {"10.100.0.1", "10.100.0.0", l.saB1}, {"10.100.0.2", "10.100.0.3", l.saA2}, {"10.100.0.3", "10.100.0.2", l.saB2}} {
		enc, auth, authKey := "AES-GCM with 16 octet ICV [RFC4106]", "NULL", ""
		if d.sa.transform == "aes128cbc-sha256" {
			enc, auth, authKey = "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]", "0x"+d.sa.auth
		}
		args = append(args, "-o", fmt.Sprintf(`uat:esp_sa:"IPv4","%s","%s","0x%08x","%s","0x%s","%s","%s"`, d.src, d.dst, d.sa.spi, enc, d.sa.key, auth, authKey))
	}
	mssArgs := append(append([]string(nil), args...), "-Y", "tcp.flags.syn == 1", "-T", "fields", "-e", "tcp.options.mss_val")
	mss := strings.Fields(run(t, mssArgs...))
	if len(mss) == 0 {
		t.Error("no decrypted TCP SYN in the capture")
	}
	for _, v := range mss {
		// TUN MTU 1370 (a CBC tunnel is configured) - 40 bytes of headers.
		if v != "1330" {
			t.Errorf("TCP SYN carried MSS %s through the tunnel, want it clamped to 1330 (hosts offer 1460)", v)
		}
	}
	args = append(args, "-T", "fields", "-e", "esp.spi", "-e", "frame.protocols")
	out = run(t, args...)
	decrypted := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 2)
		if len(f) == 2 && strings.Contains(f[1], "esp:gre:ip") {
			decrypted[f[0]] = true
		}
	}
	for _, sa := range []saKeys{l.saA1, l.saB1, l.saA2, l.saB2} {
		if !decrypted[fmt.Sprintf("0x%08x", sa.spi)] {
			t.Errorf("tshark did not decrypt SPI 0x%08x (%s) to GRE/IP; decrypted: %v\n%.3000s", sa.spi, sa.transform, decrypted, out)
		}
	}
}

func setupLab(t *testing.T) *lab {
	t.Helper()
	id := randHex(t, 3)
	l := &lab{t: t, ha: "tdp-" + id + "-ha", ea: "tdp-" + id + "-ea", eb: "tdp-" + id + "-eb", hb: "tdp-" + id + "-hb", dir: t.TempDir()}
	for _, ns := range []string{l.ha, l.ea, l.eb, l.hb} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	veth := func(a, an, b, bn string) {
		run(t, "ip", "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b)
	}
	addr := func(ns, dev, cidr string) {
		run(t, "ip", "-n", ns, "addr", "add", cidr, "dev", dev)
		run(t, "ip", "-n", ns, "link", "set", dev, "up")
	}
	veth(l.ha, "tdplan", l.ea, "tdplana")
	veth(l.hb, "tdplan", l.eb, "tdplanb")
	veth(l.ea, "tdpw1a", l.eb, "tdpw1b")
	veth(l.ea, "tdpw2a", l.eb, "tdpw2b")
	addr(l.ha, "tdplan", "172.16.1.2/24")
	addr(l.ea, "tdplana", "172.16.1.1/24")
	addr(l.hb, "tdplan", "172.16.2.2/24")
	addr(l.eb, "tdplanb", "172.16.2.1/24")
	addr(l.ea, "tdpw1a", "192.0.2.1/30")
	addr(l.eb, "tdpw1b", "192.0.2.2/30")
	addr(l.ea, "tdpw2a", "198.51.100.1/30")
	addr(l.eb, "tdpw2b", "198.51.100.2/30")
	for _, a := range [][3]string{{l.ha, "tdplan", "fd00:1::2/64"}, {l.ea, "tdplana", "fd00:1::1/64"}, {l.hb, "tdplan", "fd00:2::2/64"}, {l.eb, "tdplanb", "fd00:2::1/64"}} {
		run(t, "ip", "-n", a[0], "addr", "add", a[2], "dev", a[1], "nodad")
	}
	run(t, "ip", "-n", l.ha, "-6", "route", "add", "default", "via", "fd00:1::1")
	run(t, "ip", "-n", l.hb, "-6", "route", "add", "default", "via", "fd00:2::1")
	run(t, "ip", "-n", l.ha, "route", "add", "default", "via", "172.16.1.1")
	run(t, "ip", "-n", l.hb, "route", "add", "default", "via", "172.16.2.1")
	for _, ns := range []string{l.ea, l.eb} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}

	gcm := func(spi uint32) saKeys {
		return saKeys{spi: spi, transform: "aes128gcm16", key: randHex(t, 20), esn: true}
	}
	cbc := func(spi uint32) saKeys {
		return saKeys{spi: spi, transform: "aes128cbc-sha256", key: randHex(t, 16), auth: randHex(t, 32), esn: true}
	}
	l.saA1, l.saB1, l.saA2, l.saB2 = gcm(0x1001), gcm(0x2001), cbc(0x1002), cbc(0x2002)

	l.bin = filepath.Join(l.dir, "trellis-edge")
	build := []string{"go", "build", "-o", l.bin}
	if os.Getenv("TRELLIS_DP_RACE") == "1" { // race-detector build of the edges
		build = append(build, "-race")
	}
	run(t, append(build, ".")...)
	l.statusA = filepath.Join(l.dir, "a.sock")
	l.statusB = filepath.Join(l.dir, "b.sock")
	l.procs = map[string]*exec.Cmd{}
	a, b := [2]saKeys{l.saA1, l.saA2}, [2]saKeys{l.saB1, l.saB2}
	l.writeConfigs(t, a, b, b, a)
	l.start(t, l.ea, "A", l.statusA)
	l.start(t, l.eb, "B", l.statusB)
	waitFor(t, 20*time.Second, "both tunnels to answer probes", func() bool {
		for _, s := range []string{l.statusA, l.statusB} {
			st, err := tryStatus(s)
			if err != nil {
				return false // not listening yet
			}
			for _, tu := range st.Tunnels {
				if tu.ProbesRecv == 0 {
					return false
				}
			}
		}
		return true
	})
	return l
}

func edgeConfig(remoteSite string, remotePrefixes [2]string, wans [2][2]string, remotes [2]string, ends [2][2]string, sas [2][2]saKeys) []byte {
	type sa struct {
		SPI       string `json:"spi"`
		Transform string `json:"transform"`
		Key       string `json:"key"`
		AuthKey   string `json:"auth_key,omitempty"`
	}
	conv := func(k saKeys) sa { return sa{fmt.Sprintf("0x%x", k.spi), k.transform, k.key, k.auth} }
	var tunnels []map[string]any
	for i := 0; i < 2; i++ {
		tunnels = append(tunnels, map[string]any{
			"name": fmt.Sprintf("t%d", i+1), "site": remoteSite, "vni": i + 1,
			"wan":    map[string]string{"interface": wans[i][0], "address": wans[i][1]},
			"remote": remotes[i] + ":4789", "local": ends[i][0], "peer": ends[i][1],
			"outbound": conv(sas[i][0]), "inbound": conv(sas[i][1]),
		})
	}
	b, _ := json.MarshalIndent(map[string]any{
		"tun":     map[string]any{"name": "tdp0"},
		"tunnels": tunnels,
		"routes":  []map[string]string{{"prefix": remotePrefixes[0], "site": remoteSite}, {"prefix": remotePrefixes[1], "site": remoteSite}},
	}, "", "  ")
	return b
}

func (l *lab) start(t *testing.T, ns, name, statusSock string) {
	t.Helper()
	path := filepath.Join(l.dir, name+".json")
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, l.bin, "dataplane", "--config", path, "--status-addr", "unix:"+statusSock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting edge %s: %v", name, err)
	}
	l.procs[name] = cmd
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		b, _ := os.ReadFile(logf.Name())
		if bytes.Contains(b, []byte("DATA RACE")) {
			t.Errorf("edge %s: the race detector reported a data race", name)
		}
		if t.Failed() {
			t.Logf("edge %s log:\n%s", name, b)
		}
	})
}

// TestThroughput reports iperf3 TCP throughput through each transform (and
// over the bare underlay). It is a measurement, not a pass/fail check, and
// runs only when TRELLIS_DP_IPERF=1.
func TestThroughput(t *testing.T) {
	if os.Getenv("TRELLIS_DP_IPERF") != "1" {
		t.Skip("set TRELLIS_DP_IPERF=1 to measure throughput (needs root and iperf3)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
	l := setupLab(t)
	srv := exec.Command("ip", "netns", "exec", l.hb, "iperf3", "-s", "-B", "172.16.2.2")
	srv.Stdout, srv.Stderr = io.Discard, io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// Bare underlay, for reference.
	bare := exec.Command("ip", "netns", "exec", l.eb, "iperf3", "-s", "-B", "192.0.2.2", "-p", "5202")
	bare.Stdout, bare.Stderr = io.Discard, io.Discard
	if err := bare.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bare.Process.Kill(); bare.Wait() })
	time.Sleep(500 * time.Millisecond)
	iperf := func(ns, dst string, port string, streams int) float64 {
		out := run(t, "ip", "netns", "exec", ns, "iperf3", "-c", dst, "-p", port, "-t", "5", "-P", fmt.Sprint(streams), "-J")
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("iperf3 output: %v", err)
		}
		return r.End.SumReceived.BitsPerSecond / 1e9
	}
	t.Logf("bare veth: 1 stream %.2f Gbit/s, 4 streams %.2f Gbit/s", iperf(l.ea, "192.0.2.2", "5202", 1), iperf(l.ea, "192.0.2.2", "5202", 4))
	only := func(up, down string, tunnel string) {
		run(t, "ip", "-n", l.ea, "link", "set", up, "up")
		run(t, "ip", "-n", l.ea, "link", "set", down, "down")
		waitFor(t, 20*time.Second, "failover to "+tunnel, func() bool {
			for _, s := range []string{l.statusA, l.statusB} {
				for _, tu := range l.status(t, s).Tunnels {
					if tu.Name != tunnel && tu.Up {
						return false
					}
					if tu.Name == tunnel && !tu.Up {
						return false
					}
				}
			}
			return true
		})
	}
	only("tdpw1a", "tdpw2a", "t1")
	t.Logf("AES-GCM tunnel: 1 stream %.2f Gbit/s, 4 streams %.2f Gbit/s", iperf(l.ha, "172.16.2.2", "5201", 1), iperf(l.ha, "172.16.2.2", "5201", 4))
	only("tdpw2a", "tdpw1a", "t2")
	t.Logf("AES-CBC+HMAC tunnel: 1 stream %.2f Gbit/s, 4 streams %.2f Gbit/s", iperf(l.ha, "172.16.2.2", "5201", 1), iperf(l.ha, "172.16.2.2", "5201", 4))
}
