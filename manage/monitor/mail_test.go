package monitor

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// smtpSink is a minimal SMTP server on loopback that records messages.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []sinkMsg
	wg   sync.WaitGroup
	// failNext refuses that many next mails (451 to MAIL FROM); mails
	// counts every MAIL FROM.
	failNext, mails int
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
			s.mu.Lock()
			s.mails++
			fail := s.failNext > 0
			if fail {
				s.failNext--
			}
			s.mu.Unlock()
			if fail {
				w("451 4.3.0 try again later")
				continue
			}
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

func (s *smtpSink) setFail(n int) { s.mu.Lock(); s.failNext = n; s.mu.Unlock() }
func (s *smtpSink) attempts() int { s.mu.Lock(); defer s.mu.Unlock(); return s.mails }

// TestDigestRetry: a daily digest the SMTP server refuses is retried after
// 5 and 15 minutes (and then sent, once); one refused every time is
// retried after 5, 15 and 60 minutes, then left for the next day with its
// notifications still unmailed (a later digest takes them).
func TestDigestRetry(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := t.Context()
	note := func(title string) {
		t.Helper()
		must(t, f.st.CreateNotifications(ctx, []store.Notification{{UserID: f.user.ID, OrgID: f.org.ID, Type: AlertTunnelDown,
			Severity: SeverityCritical, Title: title, CreatedAt: f.clk.now().Add(-time.Minute)}}))
	}
	unmailed := func() int {
		t.Helper()
		_, n, err := f.st.UnmailedNotifications(ctx, f.user.ID, 10)
		must(t, err)
		return n
	}
	note("tunnel down (tunnel 1)")
	f.sink.setFail(2)
	f.svc.SendDigests(ctx)
	if f.sink.attempts() != 1 || len(f.sink.messages()) != 0 || unmailed() != 1 {
		t.Fatalf("first attempt: %d attempts, %d mails, %d unmailed", f.sink.attempts(), len(f.sink.messages()), unmailed())
	}
	steps := []struct {
		wait     time.Duration
		attempts int
		mails    int
	}{
		{4 * time.Minute, 1, 0},  // not due yet
		{time.Minute, 2, 0},      // 5 min: refused again
		{14 * time.Minute, 2, 0}, // not due
		{time.Minute, 3, 1},      // 15 min later: sent
		{2 * time.Hour, 3, 1},    // nothing more
	}
	for i, st := range steps {
		f.clk.add(st.wait)
		f.svc.RetryDigests(ctx)
		if f.sink.attempts() != st.attempts || len(f.sink.messages()) != st.mails {
			t.Fatalf("step %d: %d attempts, %d mails; want %d, %d", i, f.sink.attempts(), len(f.sink.messages()), st.attempts, st.mails)
		}
	}
	if unmailed() != 0 || !strings.Contains(f.sink.messages()[0].data, "tunnel down (tunnel 1)") {
		t.Fatalf("after the retry: %d unmailed, mail %q", unmailed(), f.sink.messages()[0].data)
	}

	// Refused every time: 1 + 3 retries, then nothing until tomorrow.
	note("tunnel down (tunnel 2)")
	f.sink.setFail(100)
	f.svc.SendDigests(ctx)
	for _, wait := range []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour} {
		f.clk.add(wait)
		f.svc.RetryDigests(ctx)
	}
	if got := f.sink.attempts() - 3; got != 4 {
		t.Fatalf("%d attempts, want 4 (the digest and 3 retries)", got)
	}
	if unmailed() != 1 {
		t.Fatalf("the notification of the failed digest is not left for tomorrow: %d unmailed", unmailed())
	}
	f.sink.setFail(0)
	f.svc.SendDigests(ctx) // the next day's
	if ms := f.sink.messages(); len(ms) != 2 || !strings.Contains(ms[1].data, "tunnel down (tunnel 2)") || unmailed() != 0 {
		t.Fatalf("next digest: %d mails, %d unmailed", len(ms), unmailed())
	}
}
