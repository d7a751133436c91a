package auth

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults understood by every authenticator app.
const (
	TOTPPeriod = 30 * time.Second
	TOTPSkew   = 1 // steps accepted on either side of now
	TOTPDigits = 6
)

// TOTPKey is a freshly enrolled TOTP secret.
type TOTPKey struct {
	Secret string // base32, as typed into an authenticator
	URL    string // otpauth:// URL for a QR code
}

// NewTOTP creates a new TOTP secret for a user.
func NewTOTP(issuer, account string) (TOTPKey, error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("generating TOTP secret: %w", err)
	}
	return TOTPKey{Secret: k.Secret(), URL: k.URL()}, nil
}

// TOTPCounter is the time step of t.
func TOTPCounter(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// TOTPCode returns the code for secret at t (for tests and tooling).
func TOTPCode(secret string, t time.Time) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(TOTPCounter(t)), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// MatchTOTP checks code against secret at time now with a skew of one step
// and returns the matching time step. The comparison is constant time.
func MatchTOTP(secret, code string, now time.Time) (int64, error) {
	code = strings.TrimSpace(code)
	if len(code) != TOTPDigits {
		return 0, ErrMismatch
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, ErrMismatch
		}
	}
	cur := TOTPCounter(now)
	matched := int64(-1)
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		ok, err := hotp.ValidateCustom(code, uint64(cur+d), secret, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, fmt.Errorf("validating TOTP: %w", err)
		}
		if ok && matched < 0 {
			matched = cur + d
		}
	}
	if matched < 0 {
		return 0, ErrMismatch
	}
	return matched, nil
}

// ReplayGuard remembers, per user, the last TOTP time step accepted, so a
// code cannot be used twice within its validity window. It is in memory,
// per process.
type ReplayGuard struct {
	mu   sync.Mutex
	last map[string]int64
}

// NewReplayGuard returns an empty guard.
func NewReplayGuard() *ReplayGuard { return &ReplayGuard{last: map[string]int64{}} }

// Use records step for user and reports false when that step (or a later
// one) was already used.
func (g *ReplayGuard) Use(user string, step, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.last[user]; ok && step <= last {
		return false
	}
	g.last[user] = step
	if len(g.last) > 10000 { // forget steps that can no longer validate
		for u, s := range g.last {
			if s < now-TOTPSkew-1 {
				delete(g.last, u)
			}
		}
	}
	return true
}

// TOTPVerifier validates TOTP codes with replay protection.
type TOTPVerifier struct {
	Now   func() time.Time
	Guard *ReplayGuard
}

// NewTOTPVerifier returns a verifier on the given clock (time.Now if nil).
func NewTOTPVerifier(now func() time.Time) *TOTPVerifier {
	if now == nil {
		now = time.Now
	}
	return &TOTPVerifier{Now: now, Guard: NewReplayGuard()}
}

// ErrCodeReused is returned for a TOTP code already accepted once.
var ErrCodeReused = fmt.Errorf("code already used: wait for the next code: %w", ErrMismatch)

// Verify checks a code of user against secret and consumes it.
func (v *TOTPVerifier) Verify(user, secret, code string) error {
	_, err := v.VerifyStep(user, secret, code)
	return err
}

// VerifyStep is Verify returning the time step the code matched, so a
// caller can also record it durably (other processes, restarts).
func (v *TOTPVerifier) VerifyStep(user, secret, code string) (int64, error) {
	now := v.Now()
	step, err := MatchTOTP(secret, code, now)
	if err != nil {
		return 0, err
	}
	if !v.Guard.Use(user, step, TOTPCounter(now)) {
		return 0, ErrCodeReused
	}
	return step, nil
}

// RecoveryCodeCount is the number of recovery codes issued at activation.
const RecoveryCodeCount = 10

// NewRecoveryCodes returns RecoveryCodeCount codes (xxxxx-xxxxx) and their
// hashes. Only the hashes are stored; each code works once.
func NewRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodeCount {
		s := RandomString(7)[:10]
		c := s[:5] + "-" + s[5:]
		codes = append(codes, c)
		hashes = append(hashes, HashRecoveryCode(c))
	}
	return codes, hashes
}

// HashRecoveryCode normalizes a typed recovery code (case, spaces, dashes)
// and hashes it.
func HashRecoveryCode(code string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		if r == '-' || r == ' ' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	return HashSecret("recovery:" + b.String())
}
