package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (a *API) login(c *call) (any, error) {
	var in loginRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	email := normEmail(in.Email)
	if email == "" {
		return nil, invalid("email", "email is required")
	}
	if in.Password == "" {
		return nil, invalid("password", "password is required")
	}
	if len(email) > 254 || len(in.Password) > auth.MaxPasswordLen {
		return nil, unauthorized("wrong email or password")
	}
	if ok, wait := a.limiter.Allow(limiterKey(c.ip), email); !ok {
		a.metrics.logins.WithLabelValues("limited").Inc()
		e := errorf(http.StatusTooManyRequests, CodeTooManyRequests, "too many login attempts: retry in %s", wait.Round(time.Second))
		e.RetryAfter = wait
		return nil, e
	}
	u, err := a.st.GetUserByEmail(c.ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		_ = auth.VerifyPassword(a.dummyHash, in.Password) // same work as a real check
		a.metrics.logins.WithLabelValues("failed").Inc()
		return nil, unauthorized("wrong email or password")
	} else if err != nil {
		return nil, err
	}
	if err := auth.VerifyPassword(u.PasswordHash, in.Password); err != nil {
		if !errors.Is(err, auth.ErrMismatch) {
			a.log.Error("stored password hash unreadable", "user", u.ID, "err", err)
		}
		a.metrics.logins.WithLabelValues("failed").Inc()
		return nil, unauthorized("wrong email or password")
	}
	if u.Disabled {
		a.metrics.logins.WithLabelValues("failed").Inc()
		return nil, unauthorized("user is disabled: ask an owner of your account")
	}
	a.limiter.Refund(limiterKey(c.ip), email) // the right password costs no attempt
	ms, err := a.st.ListMembershipsByUser(c.ctx, u.ID)
	if err != nil {
		return nil, err
	}
	forced, err := a.forcesTOTP(c.ctx, ms)
	if err != nil {
		return nil, err
	}
	mfa := u.TOTPEnabled || forced
	now := a.now().UTC()
	tok, hash := auth.NewSessionToken()
	s := store.Session{IDHash: hash, UserID: u.ID, MFAVerified: !mfa, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(a.cfg.SessionTTL), IP: c.ip, UserAgent: truncate(c.r.UserAgent(), 256)}
	u.LastLoginAt = &now
	if auth.NeedsRehash(u.PasswordHash, a.cfg.PasswordParams) {
		if h, err := auth.HashPassword(in.Password, a.cfg.PasswordParams); err == nil {
			u.PasswordHash = h
		}
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.CreateSession(c.ctx, &s); err != nil {
			return nil, err
		}
		if err := tx.UpdateUser(c.ctx, &u); err != nil {
			return nil, err
		}
		e := audit("user.login", "user", u.ID, map[string]bool{"mfa_pending": mfa})
		e.ActorType, e.ActorID, e.ActorName = "user", u.ID, u.Email
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	if mfa {
		a.metrics.logins.WithLabelValues("mfa_pending").Inc()
	} else {
		a.metrics.logins.WithLabelValues("ok").Inc()
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", Expires: s.ExpiresAt,
		HttpOnly: true, Secure: a.cfg.SecureCookie, SameSite: http.SameSiteStrictMode})
	return loginResponse{Token: tok, ExpiresAt: s.ExpiresAt, MFARequired: mfa, User: u}, nil
}

// limiterKey groups IPv6 clients by /64 (one site or host can hold a whole
// /64); IPv4 addresses count alone.
func limiterKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (a *API) logout(c *call) (any, error) {
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		if err := tx.DeleteSession(c.ctx, c.p.session.IDHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return audit("user.logout", "user", c.p.user.ID, nil), nil
	})
	if err != nil {
		return nil, err
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.cfg.SecureCookie, SameSite: http.SameSiteStrictMode})
	return nil, nil
}

func (a *API) me(c *call) (any, error) {
	info := authInfo{Type: "session"}
	if c.p.key != nil {
		info = authInfo{Type: "access_key", AccessKeyID: c.p.key.ID}
	}
	ms := c.p.memberships
	if ms == nil {
		ms = []store.Membership{}
	}
	return meResponse{User: c.p.user, Memberships: ms, Auth: info}, nil
}

func (a *API) changePassword(c *call) (any, error) {
	var in passwordRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := auth.VerifyPassword(c.p.user.PasswordHash, in.CurrentPassword); err != nil {
		return nil, invalid("current_password", "current password is wrong")
	}
	if err := auth.ValidatePassword(in.NewPassword); err != nil {
		return nil, invalid("new_password", "%v", err)
	}
	h, err := auth.HashPassword(in.NewPassword, a.cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		u, err := tx.GetUser(c.ctx, c.p.user.ID)
		if err != nil {
			return nil, err
		}
		u.PasswordHash = h
		if err := tx.UpdateUser(c.ctx, &u); err != nil {
			return nil, err
		}
		// End every other session of the user; keep this one.
		if err := tx.DeleteUserSessions(c.ctx, u.ID); err != nil {
			return nil, err
		}
		s := *c.p.session
		if err := tx.CreateSession(c.ctx, &s); err != nil {
			return nil, err
		}
		return audit("user.password_change", "user", u.ID, nil), nil
	})
}

func (a *API) totpPurpose(userID string) string { return "totp:" + userID }

func (a *API) totpEnroll(c *call) (any, error) {
	if c.p.user.TOTPEnabled {
		return nil, conflict("TOTP is already enabled: disable it first to enroll a new authenticator")
	}
	k, err := auth.NewTOTP(a.cfg.TOTPIssuer, c.p.user.Email)
	if err != nil {
		return nil, err
	}
	err = c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		u, err := tx.GetUser(c.ctx, c.p.user.ID)
		if err != nil {
			return nil, err
		}
		u.TOTPSecret = a.cfg.Sealer.Seal([]byte(k.Secret), a.totpPurpose(u.ID))
		u.TOTPEnabled = false
		if err := tx.UpdateUser(c.ctx, &u); err != nil {
			return nil, err
		}
		return audit("user.totp_enroll", "user", u.ID, nil), nil
	})
	if err != nil {
		return nil, err
	}
	qrPNG, err := qrDataURL(k.URL)
	if err != nil {
		return nil, err
	}
	return totpEnrollResponse{Secret: k.Secret, OTPAuthURL: k.URL, QRPNG: qrPNG}, nil
}

// QR code rendering of the otpauth URL: qrModulePx pixels per module and a
// quiet zone of qrQuietModules modules on every side (the standard asks
// for 4; scanners need it to find the code).
const (
	qrModulePx     = 5
	qrQuietModules = 4
)

// qrDataURL renders content as a QR code (error correction M) in a
// two-colour PNG and returns it as a data: URL an <img> can show.
func qrDataURL(content string) (string, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("encoding the TOTP key as a QR code: %w", err)
	}
	n := code.Bounds().Dx()
	side := (n + 2*qrQuietModules) * qrModulePx
	img := image.NewPaletted(image.Rect(0, 0, side, side), color.Palette{color.White, color.Black})
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if r, _, _, _ := code.At(x, y).RGBA(); r != 0 {
				continue // a light module: the background already is
			}
			px, py := (x+qrQuietModules)*qrModulePx, (y+qrQuietModules)*qrModulePx
			for dy := 0; dy < qrModulePx; dy++ {
				for dx := 0; dx < qrModulePx; dx++ {
					img.SetColorIndex(px+dx, py+dy, 1)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("writing the TOTP QR code as PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// checkTOTP verifies a code of the current user (rate limited per user).
func (c *call) checkTOTP(u store.User, code string) error {
	if ok, wait := c.a.cfg.TOTPLimiter.Allow(u.ID); !ok {
		e := errorf(http.StatusTooManyRequests, CodeTooManyRequests, "too many attempts: retry in %s", wait.Round(time.Second))
		e.RetryAfter = wait
		return e
	}
	if u.TOTPSecret == "" {
		return conflict("no TOTP secret: enroll first (POST /api/v1/auth/totp/enroll)")
	}
	secret, err := c.a.cfg.Sealer.Open(u.TOTPSecret, c.a.totpPurpose(u.ID))
	if err != nil {
		return err
	}
	reused := invalid("code", "this code was already used: wait for the next one")
	step, err := c.a.totp.VerifyStep(u.ID, string(secret), code)
	if err != nil {
		if errors.Is(err, auth.ErrCodeReused) {
			return reused
		}
		if errors.Is(err, auth.ErrMismatch) {
			return invalid("code", "wrong code: check the authenticator's clock")
		}
		return err
	}
	// Also record the step in the database, so neither a restart nor
	// another replica accepts the same code again.
	key := "totp.last_step." + u.ID
	return c.a.st.InTx(c.ctx, func(tx store.Store) error {
		v, err := tx.GetSetting(c.ctx, key)
		switch {
		case err == nil:
			if last, perr := strconv.ParseInt(v, 10, 64); perr == nil && step <= last {
				return reused
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return tx.SetSetting(c.ctx, key, strconv.FormatInt(step, 10))
	})
}

func (a *API) totpActivate(c *call) (any, error) {
	var in codeRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if c.p.user.TOTPEnabled {
		return nil, conflict("TOTP is already enabled")
	}
	if in.Code == "" {
		return nil, invalid("code", "code is required")
	}
	if err := c.checkTOTP(c.p.user, in.Code); err != nil {
		return nil, err
	}
	codes, hashes := auth.NewRecoveryCodes()
	err := c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		u, err := tx.GetUser(c.ctx, c.p.user.ID)
		if err != nil {
			return nil, err
		}
		u.TOTPEnabled = true
		if err := tx.UpdateUser(c.ctx, &u); err != nil {
			return nil, err
		}
		if err := tx.ReplaceRecoveryCodes(c.ctx, u.ID, hashes); err != nil {
			return nil, err
		}
		// The code just proved the second factor: this session is complete.
		if err := tx.UpdateSessionMFA(c.ctx, c.p.session.IDHash, true); err != nil {
			return nil, err
		}
		return audit("user.totp_activate", "user", u.ID, nil), nil
	})
	if err != nil {
		return nil, err
	}
	return recoveryCodesResponse{RecoveryCodes: codes}, nil
}

func (a *API) totpVerify(c *call) (any, error) {
	var in totpVerifyRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	u := c.p.user
	if !u.TOTPEnabled {
		return nil, conflict("no second factor to verify: enroll TOTP first (POST /api/v1/auth/totp/enroll)")
	}
	switch {
	case in.Code != "" && in.RecoveryCode != "":
		return nil, invalid("code", "give either code or recovery_code, not both")
	case in.Code != "":
		if err := c.checkTOTP(u, in.Code); err != nil {
			return nil, err
		}
		return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
			if err := tx.UpdateSessionMFA(c.ctx, c.p.session.IDHash, true); err != nil {
				return nil, err
			}
			return audit("user.mfa_verify", "user", u.ID, nil), nil
		})
	case in.RecoveryCode != "":
		if ok, wait := a.cfg.TOTPLimiter.Allow(u.ID); !ok {
			e := errorf(http.StatusTooManyRequests, CodeTooManyRequests, "too many attempts: retry in %s", wait.Round(time.Second))
			e.RetryAfter = wait
			return nil, e
		}
		return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
			err := tx.UseRecoveryCode(c.ctx, u.ID, auth.HashRecoveryCode(in.RecoveryCode), a.now().UTC())
			if errors.Is(err, store.ErrNotFound) {
				return nil, invalid("recovery_code", "wrong or already used recovery code")
			} else if err != nil {
				return nil, err
			}
			if err := tx.UpdateSessionMFA(c.ctx, c.p.session.IDHash, true); err != nil {
				return nil, err
			}
			return audit("user.recovery_code_use", "user", u.ID, nil), nil
		})
	}
	return nil, invalid("code", "code or recovery_code is required")
}

func (a *API) totpDisable(c *call) (any, error) {
	var in codeRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if !c.p.user.TOTPEnabled {
		return nil, conflict("TOTP is not enabled")
	}
	if forced, err := a.forcesTOTP(c.ctx, c.p.memberships); err != nil {
		return nil, err
	} else if forced {
		return nil, conflict("your account requires two-factor authentication: TOTP cannot be disabled")
	}
	if in.Code == "" {
		return nil, invalid("code", "code is required")
	}
	if err := c.checkTOTP(c.p.user, in.Code); err != nil {
		return nil, err
	}
	return nil, c.tx(func(tx store.Store) (*store.AuditEntry, error) {
		u, err := tx.GetUser(c.ctx, c.p.user.ID)
		if err != nil {
			return nil, err
		}
		u.TOTPEnabled, u.TOTPSecret = false, ""
		if err := tx.UpdateUser(c.ctx, &u); err != nil {
			return nil, err
		}
		if err := tx.ReplaceRecoveryCodes(c.ctx, u.ID, nil); err != nil {
			return nil, err
		}
		return audit("user.totp_disable", "user", u.ID, nil), nil
	})
}
