package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
)

// FingerprintError says the server certificate does not match the pin.
type FingerprintError struct {
	Want, Got string // lower-case hex
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("server certificate fingerprint %s does not match the pinned %s: "+
		"if the server's certificate was replaced on purpose, pin the new one with --fingerprint",
		FormatFingerprint(e.Got), FormatFingerprint(e.Want))
}

// ParseFingerprint normalizes a SHA-256 fingerprint to 64 lower-case hex
// digits. Colons, spaces, dashes and a "sha256:" prefix are accepted.
func ParseFingerprint(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "sha256:")
	t = strings.TrimPrefix(t, "sha256 ")
	t = strings.NewReplacer(":", "", " ", "", "-", "").Replace(t)
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want the SHA-256 of the server certificate, 64 hex digits (colons allowed)", s)
	}
	return t, nil
}

// FormatFingerprint renders 64 hex digits as colon-separated upper-case
// pairs (the form most tools print). Anything else is returned unchanged.
func FormatFingerprint(hexfp string) string {
	if len(hexfp) != 2*sha256.Size {
		return hexfp
	}
	var b strings.Builder
	for i := 0; i < len(hexfp); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(hexfp[i : i+2]))
	}
	return b.String()
}

// CertFingerprint is the lower-case hex SHA-256 of a certificate's DER.
func CertFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// FetchFingerprint connects to an https server without verifying it and
// returns the fingerprint of the certificate it presents, so that a person
// can compare it with the one manage printed and pin it.
func FetchFingerprint(ctx context.Context, baseURL string) (string, error) {
	u, err := ParseBaseURL(baseURL)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" {
		return "", errors.New("the server URL is not https: there is no certificate to pin")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return "", fmt.Errorf("connecting to %s: %w", host, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s sent no certificate", host)
	}
	return CertFingerprint(certs[0]), nil
}
