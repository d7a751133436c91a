package monitor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"sort"
	"strings"
	"time"
)

// MailConfig says how manage sends e-mail.
type MailConfig struct {
	Addr     string // host:port of the SMTP server ("" = no e-mail)
	From     string // envelope and header sender
	Username string // PLAIN auth (only over TLS or to localhost, as net/smtp insists)
	Password string
	// TLS: "starttls" (default: use it when the server offers it),
	// "require-starttls", "tls" (implicit TLS, port 465), "none".
	TLS string
	// TLSConfig overrides the TLS settings (tests, private CAs).
	TLSConfig *tls.Config
	Timeout   time.Duration // per message (default 30 s)
}

// Enabled reports whether e-mail is configured.
func (c MailConfig) Enabled() bool { return c.Addr != "" && c.From != "" }

// Validate checks the configuration.
func (c MailConfig) Validate() error {
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("smtp address %q: want host:port", c.Addr)
	}
	if !validMailbox(c.From) {
		return fmt.Errorf("smtp sender %q: want an e-mail address", c.From)
	}
	switch c.TLS {
	case "", "starttls", "require-starttls", "tls", "none":
	default:
		return fmt.Errorf("smtp tls %q: want starttls, require-starttls, tls or none", c.TLS)
	}
	return nil
}

func validMailbox(a string) bool {
	local, domain, ok := strings.Cut(a, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(a, " \r\n<>,;")
}

// Mail is one message.
type Mail struct {
	To      []string
	Subject string
	Body    string // plain text
}

// SendMail delivers one message over SMTP.
func SendMail(ctx context.Context, c MailConfig, m Mail) error {
	if !c.Enabled() {
		return errors.New("e-mail is not configured (--smtp-addr, --smtp-from)")
	}
	if len(m.To) == 0 {
		return errors.New("mail without recipients")
	}
	for _, to := range m.To {
		if !validMailbox(to) {
			return fmt.Errorf("recipient %q is not an e-mail address", to)
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(c.Addr)
	tcfg := c.TLSConfig
	if tcfg == nil {
		tcfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", c.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if c.TLS == "tls" {
		conn = tls.Client(conn, tcfg)
	}
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting from %s: %w", c.Addr, err)
	}
	defer cl.Close()
	if err := cl.Hello("trellis-manage"); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	if c.TLS == "" || c.TLS == "starttls" || c.TLS == "require-starttls" {
		if ok, _ := cl.Extension("STARTTLS"); ok {
			if err := cl.StartTLS(tcfg); err != nil {
				return fmt.Errorf("SMTP STARTTLS: %w", err)
			}
		} else if c.TLS == "require-starttls" {
			return fmt.Errorf("SMTP server %s does not offer STARTTLS", c.Addr)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return fmt.Errorf("SMTP authentication: %w", err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, to := range m.To {
		if err := cl.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", to, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(formatMessage(c.From, m, time.Now())); err != nil {
		return fmt.Errorf("SMTP message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP message: %w", err)
	}
	return cl.Quit()
}

func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func formatMessage(from string, m Mail, at time.Time) []byte {
	var b strings.Builder
	b.WriteString("From: " + from + "\r\n")
	b.WriteString("To: " + strings.Join(m.To, ", ") + "\r\n")
	b.WriteString("Subject: " + headerSafe(m.Subject) + "\r\n")
	b.WriteString("Date: " + at.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for _, line := range strings.Split(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n") {
		// net/smtp's DATA writer does the dot-stuffing.
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}

// Notice is what a notification says, for mail formatting.
type Notice struct {
	Severity string
	Type     string
	Org      string
	Title    string
	Message  string
	At       time.Time
}

// DigestListMax is how many notifications a digest lists.
const DigestListMax = 50

// DigestMail formats the daily digest of a user's unread notifications
// (most severe first, then newest; at most DigestListMax listed, total
// counted).
func DigestMail(to string, ns []Notice, total int) Mail {
	ns = append([]Notice(nil), ns...)
	sort.SliceStable(ns, func(i, j int) bool {
		if a, b := SeverityRank(ns[i].Severity), SeverityRank(ns[j].Severity); a != b {
			return a > b
		}
		return ns[i].At.After(ns[j].At)
	})
	if len(ns) > DigestListMax {
		ns = ns[:DigestListMax]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "You have %d unread Trellis notification(s).\n\n", total)
	for _, n := range ns {
		fmt.Fprintf(&b, "[%s] %s  %s\n    %s\n", strings.ToUpper(n.Severity), n.At.UTC().Format("2006-01-02 15:04 UTC"), n.Title, n.Message)
	}
	if total > len(ns) {
		fmt.Fprintf(&b, "\n... and %d more in the notification list.\n", total-len(ns))
	}
	return Mail{To: []string{to}, Subject: fmt.Sprintf("Trellis: %d unread notification(s)", total), Body: b.String()}
}

// AlertMail formats the immediate mail of one (critical) notification.
func AlertMail(to string, n Notice) Mail {
	body := fmt.Sprintf("%s\n\nSeverity: %s\nType: %s\nOrganization: %s\nTime: %s\n", n.Message, n.Severity, n.Type, n.Org,
		n.At.UTC().Format(time.RFC3339))
	return Mail{To: []string{to}, Subject: "Trellis " + strings.ToUpper(n.Severity) + ": " + n.Title, Body: body}
}
