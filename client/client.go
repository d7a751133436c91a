// Package client is a typed Go client of the trellis-manage REST API
// (docs/api.md). It is meant for scripts, tools and trellisctl; it depends on
// nothing of the server.
//
//	c, err := client.New(client.Options{
//		BaseURL:     "https://manage.example.net:8443",
//		Fingerprint: "3f:a1:...", // or a CA bundle, or Insecure
//		Token:       os.Getenv("TRELLIS_ACCESS_KEY"),
//	})
//	devices, err := c.ListDevices(ctx, orgID, client.ListParams{Limit: 100})
//
// Every method takes a context; every API error is returned as *Error.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// APIPrefix is the path under which every REST endpoint lives.
const APIPrefix = "/api/v1"

// DefaultTimeout bounds one request (connect, send, read the answer) when
// Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxResponse bounds how much of a response body is read.
const maxResponse = 64 << 20

// Options configure a Client.
type Options struct {
	// BaseURL is the controller's URL, e.g. https://manage.example.net:8443.
	// A trailing /api/v1 is accepted and ignored.
	BaseURL string
	// Token is a session token (tss_...) or an access key (tak_...), sent as
	// a bearer token. It may be empty for the open endpoints.
	Token string
	// Fingerprint pins the server certificate: the hex SHA-256 of its DER
	// encoding (colons, spaces and case are ignored). When set, the chain is
	// not checked against any CA; only the pin counts.
	Fingerprint string
	// CAFile is a PEM bundle of CAs to trust instead of the system pool.
	CAFile string
	// Insecure skips every check of the server certificate.
	Insecure bool
	// Timeout bounds each request; 0 means DefaultTimeout, negative none.
	Timeout time.Duration
	// UserAgent is sent with every request; empty means "trellis-client".
	UserAgent string
	// HTTPClient replaces the HTTP client built from the TLS options
	// (Fingerprint, CAFile, Insecure and Timeout are then ignored).
	HTTPClient *http.Client
	// Logger receives one debug record per request (method, path, status,
	// duration; never a token or body). Nil logs nothing.
	Logger *slog.Logger
}

// Client talks to one controller. It is safe for concurrent use; SetToken
// must not race with requests.
type Client struct {
	base      *url.URL
	token     string
	userAgent string
	hc        *http.Client
	log       *slog.Logger
}

// New checks the options and builds a client.
func New(opts Options) (*Client, error) {
	base, err := ParseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, token: opts.Token, userAgent: opts.UserAgent, hc: opts.HTTPClient, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.userAgent == "" {
		c.userAgent = "trellis-client"
	}
	if c.hc == nil {
		tc, err := tlsConfig(opts)
		if err != nil {
			return nil, err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		timeout := opts.Timeout
		switch {
		case timeout == 0:
			timeout = DefaultTimeout
		case timeout < 0:
			timeout = 0
		}
		c.hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	return c, nil
}

// ParseBaseURL validates a controller URL: http or https, a host, no query.
// A trailing "/api/v1" is removed.
func ParseBaseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("no server URL: set one with --server or `trellisctl config set server https://host:port`")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: must not have a query or fragment", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), APIPrefix)
	u.RawPath = ""
	return u, nil
}

func tlsConfig(opts Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case opts.Fingerprint != "":
		want, err := ParseFingerprint(opts.Fingerprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain verification: a self-signed certificate
		// has no CA, and the pin is stronger than any CA.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			got := CertFingerprint(cs.PeerCertificates[0])
			if got != want {
				return &FingerprintError{Want: want, Got: got}
			}
			return nil
		}
	case opts.Insecure:
		tc.InsecureSkipVerify = true
	case opts.CAFile != "":
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", opts.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// BaseURL returns the controller URL (without /api/v1).
func (c *Client) BaseURL() string { return c.base.String() }

// Token returns the bearer token in use.
func (c *Client) Token() string { return c.token }

// SetToken replaces the bearer token (after a login, for example).
func (c *Client) SetToken(token string) { c.token = token }

// Do sends one request to path (relative to /api/v1, e.g. "/organizations")
// with query parameters and a JSON body (nil for none), and decodes a JSON
// answer into out (nil to discard it; *json.RawMessage to keep it raw).
// A non-2xx answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := *c.base
	// path holds escaped segments (see esc): keep them escaped on the wire.
	raw := strings.TrimSuffix(u.EscapedPath(), "/") + APIPrefix + path
	p, err := url.PathUnescape(raw)
	if err != nil {
		return fmt.Errorf("request path %q: %w", path, err)
	}
	u.Path, u.RawPath = p, raw
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.log.DebugContext(ctx, "request failed", "method", method, "url", u.Redacted(), "err", err)
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	c.log.DebugContext(ctx, "request", "method", method, "url", u.Redacted(), "status", resp.StatusCode,
		"duration", time.Since(start).Round(time.Microsecond))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, u.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data)
	}
	if dst, ok := ctx.Value(rawAnswerKey{}).(*json.RawMessage); ok && dst != nil {
		*dst = append((*dst)[:0], data...)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, u.Redacted(), err)
	}
	return nil
}

// Health fetches /healthz (outside /api/v1) and reports an error unless the
// server answers 2xx.
func (c *Client) Health(ctx context.Context) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("health check of %s: %w", c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data)
	}
	return nil
}

// OpenAPI returns the server's OpenAPI 3 document.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var doc json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/openapi.json", nil, nil, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }

// get, post, patch and del are shorthands for Do.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	if body == nil {
		body = struct{}{}
	}
	return c.Do(ctx, http.MethodPost, path, nil, body, out)
}

func (c *Client) patch(ctx context.Context, path string, body, out any) error {
	return c.Do(ctx, http.MethodPatch, path, nil, body, out)
}

func (c *Client) del(ctx context.Context, path string) error {
	return c.Do(ctx, http.MethodDelete, path, nil, nil, nil)
}

// requireID refuses an empty identifier before a request goes out (an empty
// path segment would address a different route).
func requireID(what, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%s id is empty", what)
	}
	return nil
}

// unwrapURLError drops net/http's *url.Error wrapper, whose text repeats the
// method and URL the caller already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

type rawAnswerKey struct{}

// WithRawAnswer returns a context under which every successful call of a
// Client stores the raw body of its answer in *dst (the last call wins; an
// empty answer leaves it empty). trellisctl uses it to print objects exactly
// as the server sent them.
func WithRawAnswer(ctx context.Context, dst *json.RawMessage) context.Context {
	return context.WithValue(ctx, rawAnswerKey{}, dst)
}
