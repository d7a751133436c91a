package agent

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// PinError says manage presented a certificate other than the pinned one.
type PinError struct{ Want, Got string }

func (e *PinError) Error() string {
	return fmt.Sprintf("manage's certificate does not match the pin in the organization token (want SHA-256 %s, got %s): wrong server, or the token is from an older certificate", e.Want, e.Got)
}

// normalizeFingerprint lower-cases a hex SHA-256 fingerprint and removes
// colons and spaces; it errors when the result is not 64 hex digits.
func normalizeFingerprint(fp string) (string, error) {
	fp = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(fp)))
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("certificate fingerprint %q is not a hex SHA-256", fp)
	}
	return fp, nil
}

// TLSConfig returns the client TLS configuration for manage. With a
// fingerprint, the leaf certificate's DER SHA-256 must equal it and no CA is
// consulted (manage's certificate is usually self-signed); without one, the
// system CAs verify the chain as usual (manage behind a proxy with a public
// certificate).
func TLSConfig(fingerprint string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if fingerprint == "" {
		return tc, nil
	}
	want, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	// The pin replaces chain verification, which VerifyConnection does.
	tc.InsecureSkipVerify = true
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("manage sent no certificate")
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != want {
			return &PinError{Want: want, Got: got}
		}
		return nil
	}
	return tc, nil
}

// CertFingerprint is the hex SHA-256 of a certificate's DER encoding.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// httpClient builds an HTTP client for manage with the pin.
func httpClient(fingerprint string, timeout time.Duration) (*http.Client, error) {
	tc, err := TLSConfig(fingerprint)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.Proxy = nil // an edge talks to manage directly
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
