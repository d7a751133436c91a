package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

// Refusal codes of the registration endpoint.
const (
	CodeTokenInvalid = "token_invalid"
	CodeTokenRevoked = "token_revoked"
	CodeDeviceLimit  = "device_limit"
)

// RefusedError is manage's refusal of a request, from its error body.
type RefusedError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is manage's Retry-After (rate limiting), 0 if none.
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string {
	hint := ""
	switch e.Code {
	case CodeTokenRevoked:
		hint = " (the organization token was revoked: put a current token in the token file)"
	case CodeTokenInvalid:
		hint = " (manage does not accept this organization token: check the token file)"
	case CodeDeviceLimit:
		hint = " (the account has reached its device limit: delete a device or raise the limit)"
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("manage refused: %s: %s%s", e.Code, msg, hint)
}

// readRefusal turns a non-2xx answer into a *RefusedError.
func readRefusal(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &RefusedError{Status: resp.StatusCode}
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
		e.RetryAfter = min(time.Duration(secs)*time.Second, time.Hour)
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code = fmt.Sprintf("http_%d", resp.StatusCode)
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	return e
}

// ReadToken reads and parses the organization token file.
func ReadToken(path string) (orgtoken.Token, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return orgtoken.Token{}, "", fmt.Errorf("reading the organization token: %w (put the token from manage there, or pass --token-file)", err)
	}
	text := strings.TrimSpace(string(b))
	tok, err := orgtoken.Parse(text)
	if err != nil {
		return orgtoken.Token{}, "", fmt.Errorf("organization token in %s: %w", path, err)
	}
	return tok, text, nil
}

// Register sends one registration request and returns the credential to
// store. It does not retry.
func Register(ctx context.Context, tokenText string, info devproto.DeviceInfo) (state.Credential, error) {
	tok, err := orgtoken.Parse(tokenText)
	if err != nil {
		return state.Credential{}, err
	}
	p := tok.Payload
	hc, err := httpClient(p.FP, 30*time.Second)
	if err != nil {
		return state.Credential{}, err
	}
	defer hc.CloseIdleConnections()
	body, err := json.Marshal(devproto.RegisterRequest{Token: strings.TrimSpace(tokenText), Info: info})
	if err != nil {
		return state.Credential{}, err
	}
	url := strings.TrimSuffix(p.URL, "/") + devproto.PathRegister
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return state.Credential{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "trellis-edge")
	resp, err := hc.Do(req)
	if err != nil {
		return state.Credential{}, fmt.Errorf("registering with %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return state.Credential{}, readRefusal(resp)
	}
	var rr devproto.RegisterResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	if err := dec.Decode(&rr); err != nil {
		return state.Credential{}, fmt.Errorf("registration answer from %s: %w", p.URL, err)
	}
	c := state.Credential{
		DeviceID: rr.DeviceID, OrgID: rr.OrgID, ManageURL: strings.TrimSuffix(p.URL, "/"),
		Fingerprint: p.FP, Credential: rr.Credential, TokenID: p.TID, Approval: rr.Approval,
		MachineID: info.MachineID, Registered: time.Now().UTC(),
	}
	if c.OrgID == "" {
		c.OrgID = p.Org
	}
	if err := c.Validate(); err != nil {
		return state.Credential{}, fmt.Errorf("registration answer from %s: %w", p.URL, err)
	}
	return c, nil
}

// permanent reports whether a registration error cannot heal by itself
// soon (a refused token); the edge still retries, at the longest delay.
func permanent(err error) bool {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Code == CodeTokenInvalid || re.Code == CodeTokenRevoked || re.Code == CodeDeviceLimit
	}
	var pe *PinError
	return errors.As(err, &pe)
}

// retryAfter is how long manage asked to wait before the next attempt.
func retryAfter(err error) time.Duration {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.RetryAfter
	}
	return 0
}
