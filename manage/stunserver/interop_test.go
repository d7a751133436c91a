package stunserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// Interop with coturn (Debian package coturn): its STUN client against
// this server, and a pion/stun client (as the edge uses) against its
// server.

func need(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s not installed (Debian package coturn; scripts/install-deps.sh installs it): skipping the interop test", bin)
	}
	return p
}

func TestCoturnClientAgainstUs(t *testing.T) {
	bin := need(t, "turnutils_stunclient")
	s := start(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Its local address is fixed (-L) so the expected mapping is known.
	out, err := exec.CommandContext(ctx, bin, "-p", strconv.Itoa(int(s.Addrs()[0].Port())), "-L", "127.0.0.1",
		"127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_stunclient: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`UDP reflexive addr: 127\.0\.0\.1:(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no reflexive address in its output:\n%s", out)
	}
	if p, _ := strconv.Atoi(string(m[1])); p == 0 || p == int(s.Addrs()[0].Port()) {
		t.Fatalf("reflexive port %d:\n%s", p, out)
	}
	if n := value(s.metrics.answers.WithLabelValues(ResultBinding)); n < 1 {
		t.Fatalf("the server counted %v answers", n)
	}
	t.Logf("turnutils_stunclient against trellis:\n%s", out)
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func TestOurClientAgainstCoturn(t *testing.T) {
	bin := need(t, "turnserver")
	dir := t.TempDir()
	port := freeUDPPort(t)
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, bin, "-c", "/dev/null", "--stun-only", "-L", "127.0.0.1", "-p", strconv.Itoa(port),
		"--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"),
		"--no-software-attribute")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("turnserver output:\n%s", out.String())
		}
	})
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	// The edge's check, as the edge does it: a Binding request from its
	// own UDP socket (here a loopback one), the mapping read from
	// XOR-MAPPED-ADDRESS. Retried while turnserver starts (bounded).
	c := udp(t)
	me := c.LocalAddr().(*net.UDPAddr).AddrPort()
	var mapped stun.XORMappedAddress
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		req := bindingRequest(t, stun.Fingerprint)
		if _, err := c.WriteToUDPAddrPort(req.Raw, server); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			lastErr = err
			if cmd.ProcessState != nil {
				break
			}
			continue
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil {
			t.Fatalf("coturn's answer does not decode: %v", err)
		}
		if res.TransactionID != req.TransactionID {
			continue // a late answer to an earlier attempt
		}
		if res.Type != stun.BindingSuccess {
			t.Fatalf("coturn answered %s", res.Type)
		}
		lastErr = mapped.GetFrom(res)
		break
	}
	if lastErr != nil {
		var ne net.Error
		if errors.As(lastErr, &ne) && ne.Timeout() {
			t.Fatalf("coturn never answered on %s", server)
		}
		t.Fatal(lastErr)
	}
	if mapped.String() != me.String() {
		t.Fatalf("coturn mapped %s, want %s", mapped, me)
	}
}
