package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// principal is who a request authenticated as.
type principal struct {
	user        store.User
	session     *store.Session // set for session tokens
	key         *store.AccessKey
	memberships []store.Membership // of the user (the key's creator for keys)
	subj        auth.Subject
	// forceEnroll: an account of the user forces TOTP and the user has none.
	forceEnroll bool
}

func (p *principal) actor() (typ, id, name string) {
	if p.key != nil {
		return "access_key", p.key.ID, p.key.Name + " (" + p.user.Email + ")"
	}
	return "user", p.user.ID, p.user.Email
}

// call is the state of one request through a route.
type call struct {
	a       *API
	ctx     context.Context
	w       http.ResponseWriter
	r       *http.Request
	rt      *Route
	p       *principal
	body    []byte
	ip      string
	org     store.Organization // org-scoped routes
	res     auth.Resource      // the organization's place in the tree
	account store.Account      // account-scoped routes
}

func (c *call) decode(dst any) error { return decodeJSON(c.body, dst) }

// cleanID accepts identifiers that can be sent to the database.
func cleanID(v string) bool {
	return len(v) <= 256 && utf8.ValidString(v) && !strings.ContainsRune(v, 0)
}

func (c *call) param(name string) string { return c.r.PathValue(name) }

// authenticate resolves the bearer token. It returns nil, nil when the
// request carries none.
func (a *API) authenticate(ctx context.Context, r *http.Request) (*principal, *Error) {
	tok, aerr := bearerToken(r)
	if aerr != nil || tok == "" {
		return nil, aerr
	}
	now := a.now()
	p := &principal{}
	switch {
	case strings.HasPrefix(tok, auth.SessionPrefix):
		hash := auth.HashSecret(tok)
		s, err := a.st.GetSession(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil, unauthorized("session is invalid or has ended: log in again")
		} else if err != nil {
			return nil, a.internal(ctx, "loading session", err)
		}
		if !now.Before(s.ExpiresAt) {
			_ = a.st.DeleteSession(ctx, hash)
			return nil, unauthorized("session expired: log in again")
		}
		if !s.MFAVerified && !now.Before(s.CreatedAt.Add(a.cfg.PartialSessionTTL)) {
			_ = a.st.DeleteSession(ctx, hash)
			return nil, unauthorized("the second factor was not completed in time: log in again")
		}
		p.session = &s
		if p.user, err = a.st.GetUser(ctx, s.UserID); err != nil {
			return nil, unauthorized("session is invalid: log in again")
		}
		if now.Sub(s.LastSeenAt) > time.Minute {
			if err := a.st.TouchSession(ctx, hash, now); err != nil {
				a.log.Warn("touching session", "err", err)
			}
		}
	case strings.HasPrefix(tok, auth.AccessKeyPrefix):
		prefix, h, err := auth.ParseAccessKey(tok)
		if err != nil {
			return nil, unauthorized("access key is malformed: expected tak_<prefix>_<secret>")
		}
		k, err := a.st.GetAccessKeyByPrefix(ctx, prefix)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !auth.EqualHash(k.SecretHash, h)) {
			return nil, unauthorized("access key is not valid")
		} else if err != nil {
			return nil, a.internal(ctx, "loading access key", err)
		}
		if k.RevokedAt != nil {
			return nil, unauthorized("access key was revoked")
		}
		if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
			return nil, unauthorized("access key expired: create a new one")
		}
		p.key = &k
		if p.user, err = a.st.GetUser(ctx, k.UserID); err != nil {
			return nil, unauthorized("access key is not valid: its creator no longer exists")
		}
		if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
			if err := a.st.TouchAccessKey(ctx, k.ID, now); err != nil {
				a.log.Warn("touching access key", "err", err)
			}
		}
	default:
		return nil, unauthorized("unknown token type: send a session token (tss_...) or an access key (tak_...)")
	}
	if p.user.Disabled {
		return nil, unauthorized("user is disabled")
	}
	ms, err := a.st.ListMembershipsByUser(ctx, p.user.ID)
	if err != nil {
		return nil, a.internal(ctx, "loading memberships", err)
	}
	p.memberships = ms
	if p.key != nil {
		p.subj = auth.KeySubject(*p.key, ms)
	} else {
		p.subj = auth.UserSubject(p.user.ID, ms)
		if !p.user.TOTPEnabled {
			forced, err := a.forcesTOTP(ctx, ms)
			if err != nil {
				return nil, a.internal(ctx, "loading accounts", err)
			}
			p.forceEnroll = forced
		}
	}
	return p, nil
}

// forcesTOTP reports whether any account the memberships lie in forces TOTP.
func (a *API) forcesTOTP(ctx context.Context, ms []store.Membership) (bool, error) {
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.AccountID] {
			continue
		}
		seen[m.AccountID] = true
		acc, err := a.st.GetAccount(ctx, m.AccountID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if acc.ForceTOTP {
			return true, nil
		}
	}
	return false, nil
}

// gate applies the route's authentication mode to the principal.
func gate(mode authMode, p *principal) *Error {
	if mode == authOpen {
		return nil
	}
	if p == nil {
		if mode == authOptional {
			return nil
		}
		return unauthorized("authentication required: send Authorization: Bearer <session token or access key>")
	}
	if mode == authOptional {
		mode = authAny // credentials given: they must be complete
	}
	if p.key != nil {
		switch mode {
		case authSession, authPartial, authEnroll:
			return forbidden("this endpoint needs a user session, not an access key")
		}
		return nil
	}
	verified := p.session.MFAVerified
	switch mode {
	case authPartial:
		return nil
	case authEnroll:
		if !verified && p.user.TOTPEnabled {
			return mfaRequired("second factor required: POST /api/v1/auth/totp/verify with a code")
		}
		return nil
	}
	if !verified && p.user.TOTPEnabled {
		return mfaRequired("second factor required: POST /api/v1/auth/totp/verify with a code")
	}
	if p.forceEnroll || !verified {
		return mfaRequired("your account requires two-factor authentication: enroll with POST /api/v1/auth/totp/enroll, then activate")
	}
	return nil
}

func (a *API) internal(ctx context.Context, what string, err error) *Error {
	a.log.Error(what, "err", err, "request_id", RequestID(ctx))
	return errorf(http.StatusInternalServerError, CodeInternal, "internal error (request %s): see the server log", RequestID(ctx))
}

// wrap turns a route into an http.Handler: authentication, loading and
// authorizing the account or organization of the path, reading the body,
// running the handler and writing its answer or error.
func (a *API) wrap(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		defer func() {
			if p := recover(); p != nil {
				a.metrics.observe(rt.Method, rt.Path, http.StatusInternalServerError, time.Since(start))
				panic(p) // answered by the outer recovery
			}
			a.metrics.observe(rt.Method, rt.Path, max(sw.status, 200), time.Since(start))
		}()
		c := &call{a: a, ctx: r.Context(), w: sw, r: r, rt: rt, ip: clientIP(r)}
		body, err := a.serve(c)
		if err != nil {
			ae, internal := toAPIError(err)
			if internal {
				a.log.Error("request failed", "err", err, "request_id", RequestID(c.ctx), "route", rt.Method+" "+rt.Path)
				ae = a.internal(c.ctx, "request failed", err)
			}
			writeError(sw, ae)
			return
		}
		status := rt.Status
		if status == 0 {
			status = http.StatusOK
		}
		writeJSON(sw, status, body)
	})
}

func (a *API) serve(c *call) (any, error) {
	var p *principal
	if c.rt.Auth != authOpen {
		var aerr *Error
		if p, aerr = a.authenticate(c.ctx, c.r); aerr != nil {
			return nil, aerr
		}
	}
	if gerr := gate(c.rt.Auth, p); gerr != nil {
		return nil, gerr
	}
	c.p = p
	// Identifiers in the path are opaque, but never NUL, invalid UTF-8 or
	// huge: such ones cannot name anything (and some databases refuse them).
	for _, name := range c.rt.params {
		if v := c.param(name); !cleanID(v) {
			return nil, notFound(strings.TrimSuffix(name, "_id"))
		}
	}
	if c.rt.OrgAction != "" {
		if err := c.loadOrg(c.rt.OrgAction); err != nil {
			return nil, err
		}
	}
	if c.rt.Account {
		if err := c.loadAccount(); err != nil {
			return nil, err
		}
	}
	if c.rt.Body != nil {
		b, err := readBody(c.r)
		if err != nil {
			return nil, err
		}
		c.body = b
	}
	return c.rt.handle(c)
}

// loadOrg loads {org_id}: 404 unless the subject can at least read it (its
// existence is never revealed), 403 when it can read but not act.
func (c *call) loadOrg(act auth.Action) error {
	o, err := c.a.st.GetOrganization(c.ctx, c.param("org_id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("organization")
	} else if err != nil {
		return err
	}
	res := auth.Resource{AccountID: o.AccountID, GroupID: o.GroupID, OrgID: o.ID}
	if !c.p.subj.Can(auth.ActionRead, res) {
		return notFound("organization")
	}
	if !c.p.subj.Can(act, res) {
		return forbidden("your role in this organization does not allow this: %s needed", auth.Required(act))
	}
	c.org, c.res = o, res
	return nil
}

// loadAccount loads {account_id}: 404 unless the subject holds a grant in it.
func (c *call) loadAccount() error {
	id := c.param("account_id")
	if !c.p.subj.InAccount(id) {
		return notFound("account")
	}
	acc, err := c.a.st.GetAccount(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("account")
	} else if err != nil {
		return err
	}
	c.account = acc
	return nil
}

// require checks an action on a resource: 403 with what is needed.
func (c *call) require(act auth.Action, res auth.Resource) error {
	if !c.p.subj.Can(act, res) {
		return forbidden("your role does not allow this here: %s needed", auth.Required(act))
	}
	return nil
}

// tx runs fn in one transaction; the audit entry it returns (if any) is
// appended in the same transaction, so the change and its record land
// together or not at all.
func (c *call) tx(fn func(tx store.Store) (*store.AuditEntry, error)) error {
	return c.a.st.InTx(c.ctx, func(tx store.Store) error {
		e, err := fn(tx)
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		c.fillAudit(e)
		if err := tx.AppendAudit(c.ctx, e); err != nil {
			return err
		}
		return nil
	})
}

func (c *call) fillAudit(e *store.AuditEntry) {
	if c.p != nil && e.ActorID == "" {
		e.ActorType, e.ActorID, e.ActorName = c.p.actor()
	}
	if e.AccountID == "" && c.org.ID != "" {
		e.AccountID = c.org.AccountID
	}
	if e.OrgID == "" && c.org.ID != "" {
		e.OrgID = c.org.ID
	}
	if e.AccountID == "" && c.account.ID != "" {
		e.AccountID = c.account.ID
	}
	e.IP = c.ip
	e.CreatedAt = c.a.now().UTC()
}

// audit builds an entry; details is marshalled to JSON when not nil.
func audit(action, objType, objID string, details any) *store.AuditEntry {
	e := &store.AuditEntry{Action: action, ObjectType: objType, ObjectID: objID}
	if details != nil {
		e.Details = mustJSON(details)
	}
	return e
}
