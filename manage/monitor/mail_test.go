package monitor

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpSink is a minimal SMTP server on loopback that records messages.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []sinkMsg
	wg   sync.WaitGroup
}

type sinkMsg struct {
	from string
	to   []string
	data string
}

func newSMTPSink(t testing.TB) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	w := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	w("220 sink ESMTP")
	var m sinkMsg
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			w("250-sink")
			w("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = sinkMsg{from: addrArg(line[10:])}
			w("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = append(m.to, addrArg(line[8:]))
			w("250 ok")
		case cmd == "DATA":
			w("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			w("250 queued")
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("250 ok")
		}
	}
}

// addrArg is the <address> of a MAIL or RCPT command, without parameters.
func addrArg(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), " ")
	return strings.Trim(s, "<>")
}

func (s *smtpSink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

func TestSendMailToSink(t *testing.T) {
	sink := newSMTPSink(t)
	cfg := MailConfig{Addr: sink.ln.Addr().String(), From: "trellis@example.net", TLS: "starttls"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := DigestMail("ops@example.com", []Notice{
		{Severity: SeverityWarning, Title: "RTT high", Message: "tunnel 1 RTT 150 ms", At: at},
		{Severity: SeverityCritical, Title: "Tunnel down", Message: ".tunnel 2 is down", At: at},
	}, 3)
	if err := SendMail(context.Background(), cfg, m); err != nil {
		t.Fatal(err)
	}
	msgs := sink.messages()
	if len(msgs) != 1 || msgs[0].from != "trellis@example.net" || len(msgs[0].to) != 1 || msgs[0].to[0] != "ops@example.com" {
		t.Fatalf("sink got %+v", msgs)
	}
	d := msgs[0].data
	for _, want := range []string{"Subject: Trellis: 3 unread notification(s)", "[CRITICAL]", "\r\n    .tunnel 2 is down", "and 1 more"} {
		if !strings.Contains(d, want) {
			t.Errorf("message lacks %q:\n%s", want, d)
		}
	}
	if strings.Index(d, "[CRITICAL]") > strings.Index(d, "[WARNING]") {
		t.Error("critical is not listed first")
	}
}

func TestSendMailRefuses(t *testing.T) {
	sink := newSMTPSink(t)
	cfg := MailConfig{Addr: sink.ln.Addr().String(), From: "trellis@example.net", TLS: "require-starttls"}
	if err := SendMail(context.Background(), cfg, AlertMail("a@b.c", Notice{Title: "x"})); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("require-starttls against a server without it: %v", err)
	}
	cfg.TLS = "none"
	for _, m := range []Mail{{}, {To: []string{"not an address"}}, {To: []string{"x@y\r\nRCPT TO:<z@w>"}}} {
		if err := SendMail(context.Background(), cfg, m); err == nil {
			t.Errorf("%+v sent", m)
		}
	}
	if len(sink.messages()) != 0 {
		t.Fatal("a refused mail reached the sink")
	}
	for _, bad := range []MailConfig{{Addr: "nohost", From: "a@b"}, {Addr: "h:25", From: "nobody"}, {Addr: "h:25", From: "a@b", TLS: "ssl3"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
