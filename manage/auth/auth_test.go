package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHashVerify(t *testing.T) {
	h, err := HashPassword("correct horse battery", TestPasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if err := VerifyPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password rejected: %v", err)
	}
	if err := VerifyPassword(h, "correct horse batterx"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: got %v, want ErrMismatch", err)
	}
	h2, _ := HashPassword("correct horse battery", TestPasswordParams)
	if h == h2 {
		t.Fatal("two hashes of the same password are equal: salt not random")
	}
	if !NeedsRehash(h, DefaultPasswordParams) || NeedsRehash(h, TestPasswordParams) {
		t.Fatal("NeedsRehash wrong")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1024,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43), "$argon2id$v=19$m=1024,t=1,p=1$!!$AAAA", h + "$"} {
		if err := VerifyPassword(bad, "x"); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("VerifyPassword(%q) = %v, want parse error", bad, err)
		}
	}
	if _, err := HashPassword("x", PasswordParams{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}); err == nil {
		t.Error("weak params accepted")
	}
}

func TestValidatePassword(t *testing.T) {
	for pw, ok := range map[string]bool{"short": false, "0123456789": true, strings.Repeat("x", 257): false, "ünïcödé-pässwörd": true} {
		if err := ValidatePassword(pw); (err == nil) != ok {
			t.Errorf("ValidatePassword(%q) = %v", pw, err)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }

func TestTOTP(t *testing.T) {
	k, err := NewTOTP("Trellis", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.URL, "otpauth://totp/Trellis:a@example.com?") || k.Secret == "" {
		t.Fatalf("bad key %+v", k)
	}
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	v := NewTOTPVerifier(clk.Now)
	code, _ := TOTPCode(k.Secret, clk.t)
	if err := v.Verify("u1", k.Secret, code); err != nil {
		t.Fatalf("current code rejected: %v", err)
	}
	if err := v.Verify("u1", k.Secret, code); !errors.Is(err, ErrCodeReused) {
		t.Fatalf("reused code: got %v, want ErrCodeReused", err)
	}
	// Same code, other user: independent.
	if err := v.Verify("u2", k.Secret, code); err != nil {
		t.Fatalf("other user: %v", err)
	}
	// Previous step's code (skew 1) is accepted for a fresh user, two steps back is not.
	prev, _ := TOTPCode(k.Secret, clk.t.Add(-TOTPPeriod))
	old, _ := TOTPCode(k.Secret, clk.t.Add(-2*TOTPPeriod))
	next, _ := TOTPCode(k.Secret, clk.t.Add(TOTPPeriod))
	if err := v.Verify("u3", k.Secret, prev); err != nil {
		t.Fatalf("skew -1 rejected: %v", err)
	}
	if old != prev && old != code && old != next {
		if err := v.Verify("u4", k.Secret, old); !errors.Is(err, ErrMismatch) {
			t.Fatalf("code two steps old accepted: %v", err)
		}
	}
	// After u1 used the current step, the previous step is also refused
	// (replay of an older code), the next step works.
	if prev != code {
		if err := v.Verify("u1", k.Secret, prev); err == nil {
			t.Fatal("older step accepted after a newer one was used")
		}
	}
	clk.Add(TOTPPeriod)
	if err := v.Verify("u1", k.Secret, next); err != nil {
		t.Fatalf("next step rejected: %v", err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", " 12a45 "} {
		if err := v.Verify("u5", k.Secret, bad); err == nil {
			t.Errorf("code %q accepted", bad)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes()
	if len(codes) != RecoveryCodeCount || len(hashes) != RecoveryCodeCount {
		t.Fatalf("got %d codes", len(codes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] {
			t.Fatalf("bad or duplicate code %q", c)
		}
		seen[c] = true
		if HashRecoveryCode(strings.ToUpper(strings.ReplaceAll(c, "-", " "))) != hashes[i] {
			t.Fatalf("normalized code %q does not hash to stored hash", c)
		}
	}
	if HashRecoveryCode(codes[0]) == HashRecoveryCode(codes[1]) {
		t.Fatal("distinct codes hash equal")
	}
}

func TestSecrets(t *testing.T) {
	key, prefix, h := NewAccessKey()
	if !strings.HasPrefix(key, "tak_"+prefix+"_") {
		t.Fatalf("bad key %q", key)
	}
	p, h2, err := ParseAccessKey(key)
	if err != nil || p != prefix || !EqualHash(h, h2) {
		t.Fatalf("ParseAccessKey(%q) = %q, %q, %v", key, p, h2, err)
	}
	for _, bad := range []string{"", "tak_", "tak_abc_def", "tss_" + key[4:], key[:len(key)-20], "tak_" + prefix + "_" + strings.Repeat("A", 52)} {
		if _, _, err := ParseAccessKey(bad); err == nil {
			t.Errorf("ParseAccessKey(%q) accepted", bad)
		}
	}
	tok, th := NewSessionToken()
	if !strings.HasPrefix(tok, "tss_") || HashSecret(tok) != th || len(th) != 64 {
		t.Fatalf("bad session token %q %q", tok, th)
	}
	tok2, _ := NewSessionToken()
	if tok == tok2 {
		t.Fatal("session tokens repeat")
	}
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLimiter(3, 10*time.Second, clk.Now)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused within burst", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("4th attempt: ok=%v wait=%v, want refused, 10s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("other key limited")
	}
	clk.Add(4 * time.Second)
	if ok, wait := l.Allow("a"); ok || wait != 6*time.Second {
		t.Fatalf("after 4s: ok=%v wait=%v, want refused, 6s", ok, wait)
	}
	clk.Add(6 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refused after refill")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("one refill allowed two attempts")
	}
	clk.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("after long pause attempt %d refused: burst not restored", i)
		}
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("bucket exceeded burst after long pause")
	}
}

func TestLoginLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	ll := &LoginLimiter{IP: NewLimiter(5, time.Second, clk.Now), Email: NewLimiter(2, time.Minute, clk.Now)}
	// Per email: two attempts, then refused even from other IPs.
	for _, ip := range []string{"1.1.1.1", "2.2.2.2"} {
		if ok, _ := ll.Allow(ip, "v@x"); !ok {
			t.Fatal("refused within email burst")
		}
	}
	if ok, wait := ll.Allow("3.3.3.3", "v@x"); ok || wait != time.Minute {
		t.Fatalf("email limit: ok=%v wait=%v", ok, wait)
	}
	// A refund gives an attempt back (a right password).
	ll.Refund("3.3.3.3", "v@x")
	if ok, _ := ll.Allow("3.3.3.3", "v@x"); !ok {
		t.Fatal("refunded attempt not given back")
	}
	// Per IP: five attempts over different emails, then refused.
	for i := range 5 {
		if ok, _ := ll.Allow("9.9.9.9", string(rune('a'+i))+"@x"); !ok {
			t.Fatalf("IP attempt %d refused", i)
		}
	}
	if ok, _ := ll.Allow("9.9.9.9", "z@x"); ok {
		t.Fatal("IP limit not enforced")
	}
	// A refused attempt costs nothing: z@x still has its full burst.
	clk.Add(time.Second)
	if ok, _ := ll.Allow("8.8.8.8", "z@x"); !ok {
		t.Fatal("refused attempt consumed the email bucket")
	}
	if ok, _ := ll.Allow("8.8.8.8", "z@x"); !ok {
		t.Fatal("refused attempt consumed the email bucket")
	}
}

func TestSeal(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreateSealKey(dir + "/seal.key")
	if err != nil {
		t.Fatal(err)
	}
	key2, err := LoadOrCreateSealKey(dir + "/seal.key")
	if err != nil || string(key) != string(key2) {
		t.Fatalf("key not persisted: %v", err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Seal([]byte("JBSWY3DPEHPK3PXP"), "totp:u1")
	if strings.Contains(c, "JBSWY3DPEHPK3PXP") {
		t.Fatal("plaintext visible")
	}
	pt, err := s.Open(c, "totp:u1")
	if err != nil || string(pt) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := s.Open(c, "totp:u2"); !errors.Is(err, ErrUnseal) {
		t.Fatal("opened with other purpose")
	}
	other, _ := NewSealer(make([]byte, 32))
	if _, err := other.Open(c, "totp:u1"); !errors.Is(err, ErrUnseal) {
		t.Fatal("opened with other key")
	}
	for _, bad := range []string{"", "v1:", "v1:!!!", "v2:" + c[3:], c[:len(c)-2]} {
		if _, err := s.Open(bad, "totp:u1"); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}
