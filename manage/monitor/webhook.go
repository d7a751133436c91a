package monitor

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook headers.
const (
	HeaderSignature = "X-Trellis-Signature" // sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
	HeaderTimestamp = "X-Trellis-Timestamp" // unix seconds
	HeaderDelivery  = "X-Trellis-Delivery"  // delivery id, the same on every retry
	HeaderEvent     = "X-Trellis-Event"     // alert.raised, alert.resolved, alert.escalated, test
)

// DefaultSignatureTolerance is how old a signed timestamp a receiver
// should accept (VerifySignature).
const DefaultSignatureTolerance = 5 * time.Minute

// Sign returns the X-Trellis-Signature value of body sent at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a delivery as a receiver should: the signature
// over timestamp and body, and a timestamp within tolerance of now (a
// replayed old delivery fails).
func VerifySignature(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook timestamp %q: want unix seconds", tsHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook timestamp is %v away from now (tolerance %v): replay or clock skew", d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sigHeader)) {
		return errors.New("webhook signature does not match")
	}
	return nil
}

// ValidWebhookURL checks a webhook target: an absolute http or https URL
// with a host, no user info, at most 2048 bytes.
func ValidWebhookURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("want at most 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return errors.New("put no credentials in the URL: the signature authenticates deliveries")
	}
	return nil
}

// Deliverer posts signed JSON to webhooks, retrying failures (network
// errors, 429 and 5xx answers) with exponential backoff, a bounded number
// of times. Other 4xx answers are not retried.
type Deliverer struct {
	Client   *http.Client
	Attempts int           // total attempts (default 5)
	Backoff  time.Duration // first wait (default 2 s), doubled each time
	MaxWait  time.Duration // cap of one wait (default 1 min)
	// Sleep waits (or returns ctx's error); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

// Delivery is one webhook call's outcome.
type Delivery struct {
	Attempts int
	Status   int // last HTTP status, 0 if none
	Err      error
	Waits    []time.Duration
}

func (d *Deliverer) defaults() (attempts int, backoff, maxWait time.Duration) {
	attempts, backoff, maxWait = d.Attempts, d.Backoff, d.MaxWait
	if attempts <= 0 {
		attempts = 5
	}
	if backoff <= 0 {
		backoff = 2 * time.Second
	}
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	return
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Deliver posts body to target, signed with secret; every attempt is
// signed with its own timestamp.
func (d *Deliverer) Deliver(ctx context.Context, target string, secret []byte, event, deliveryID string, body []byte) Delivery {
	attempts, wait, maxWait := d.defaults()
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	sleep, now := d.Sleep, d.Now
	if sleep == nil {
		sleep = sleepCtx
	}
	if now == nil {
		now = time.Now
	}
	var res Delivery
	for i := range attempts {
		if i > 0 {
			res.Waits = append(res.Waits, wait)
			if err := sleep(ctx, wait); err != nil {
				res.Err = fmt.Errorf("webhook delivery cancelled: %w", err)
				return res
			}
			wait = min(2*wait, maxWait)
		}
		res.Attempts++
		retry, status, err := d.post(ctx, client, target, secret, event, deliveryID, body, now())
		res.Status, res.Err = status, err
		if err == nil || !retry {
			return res
		}
	}
	return res
}

func (d *Deliverer) post(ctx context.Context, c *http.Client, target string, secret []byte, event, id string, body []byte, at time.Time) (retry bool, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("webhook request: %w", err)
	}
	ts := at.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "trellis-manage")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderEvent, event)
	resp, err := c.Do(req)
	if err != nil {
		return ctx.Err() == nil, 0, fmt.Errorf("webhook post to %s: %w", redactURL(target), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, resp.StatusCode, nil
	}
	err = fmt.Errorf("webhook %s answered %s", redactURL(target), resp.Status)
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode, err
}

// redactURL keeps scheme, host and path (a query may hold a token).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	s := u.Scheme + "://" + u.Host + u.Path
	if u.RawQuery != "" {
		s += "?…"
	}
	return strings.TrimSpace(s)
}
