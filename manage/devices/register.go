package devices

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
	"github.com/trellis-sdwan/trellis/wire/orgtoken"
)

// Registration error codes (besides the API's invalid, bad_request,
// too_many_requests, internal).
const (
	CodeTokenInvalid = "token_invalid"
	CodeTokenRevoked = "token_revoked"
	CodeDeviceLimit  = "device_limit"
)

// CredentialPrefix starts every device credential.
const CredentialPrefix = "tdc_"

// maxRegisterBody bounds a registration request.
const maxRegisterBody = 1 << 20

type httpError struct {
	status     int
	code       string
	msg        string
	field      string
	retryAfter time.Duration
}

func (e *httpError) Error() string { return e.code + ": " + e.msg }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	b, _ := json.Marshal(v)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers with the API's error body {"error":{"code","message","field"}}.
func writeError(w http.ResponseWriter, e *httpError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="trellis-device"`)
	}
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	}
	writeJSON(w, e.status, struct {
		Error detail `json:"error"`
	}{detail{e.code, e.msg, e.field}})
}

// clientKey is the rate-limit key of a request: its IP (IPv6 per /64).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RegisterHandler serves POST devproto.PathRegister.
func (s *Service) RegisterHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, status, err := s.register(r)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				s.log.Error("device registration failed", "err", err, "ip", clientIP(r))
				he = &httpError{status: http.StatusInternalServerError, code: "internal", msg: "internal error: see the server log"}
			}
			s.metrics.registrations.WithLabelValues(he.code).Inc()
			if he.status != http.StatusInternalServerError {
				s.log.Info("device registration refused", "code", he.code, "reason", he.msg, "ip", clientIP(r))
			}
			writeError(w, he)
			return
		}
		s.metrics.registrations.WithLabelValues("ok").Inc()
		writeJSON(w, status, resp)
	})
}

func (s *Service) register(r *http.Request) (devproto.RegisterResponse, int, error) {
	var zero devproto.RegisterResponse
	if r.Method != http.MethodPost {
		return zero, 0, &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "use POST"}
	}
	if ok, wait := s.cfg.RegisterLimiter.Allow(clientKey(r)); !ok {
		return zero, 0, &httpError{status: http.StatusTooManyRequests, code: "too_many_requests",
			msg: "too many registrations from this address: retry later", retryAfter: wait}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return zero, 0, &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "send application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRegisterBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return zero, 0, &httpError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", msg: "registration larger than 1 MiB"}
		}
		return zero, 0, &httpError{status: http.StatusBadRequest, code: "bad_request", msg: "reading the request: " + err.Error()}
	}
	var req devproto.RegisterRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return zero, 0, &httpError{status: http.StatusBadRequest, code: "bad_request", msg: "request is not a valid registration: " + err.Error()}
	}
	if dec.More() {
		return zero, 0, &httpError{status: http.StatusBadRequest, code: "bad_request", msg: "trailing data after the JSON object"}
	}

	// The token: signed by this manage, known, not revoked.
	text := strings.TrimSpace(req.Token)
	p, err := orgtoken.ParseVerify(text, s.cfg.TokenKey)
	if err != nil {
		return zero, 0, &httpError{status: http.StatusUnauthorized, code: CodeTokenInvalid, field: "token",
			msg: "the organization token is not valid for this manage (" + err.Error() + "): copy a current token from the organization's tokens page"}
	}
	ctx := r.Context()
	tok, err := s.st.GetOrgTokenByHash(ctx, auth.HashSecret(text))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (tok.OrgID != p.Org || tok.ID != p.TID)) {
		return zero, 0, &httpError{status: http.StatusUnauthorized, code: CodeTokenInvalid, field: "token",
			msg: "the organization token is unknown (deleted with its organization?): create a new one"}
	} else if err != nil {
		return zero, 0, err
	}
	if tok.RevokedAt != nil {
		return zero, 0, &httpError{status: http.StatusUnauthorized, code: CodeTokenRevoked, field: "token",
			msg: "the organization token was revoked on " + tok.RevokedAt.Format(time.RFC3339) + ": install a current token"}
	}
	rep, ferr := validateInfo("info", req.Info)
	if ferr != nil {
		return zero, 0, &httpError{status: http.StatusUnprocessableEntity, code: "invalid", field: ferr.Field, msg: ferr.Message}
	}
	org, err := s.st.GetOrganization(ctx, tok.OrgID)
	if err != nil {
		return zero, 0, err
	}

	cred := CredentialPrefix + auth.RandomString(32)
	hash := auth.HashSecret(cred)
	var (
		d      store.Device
		status = http.StatusCreated
	)
	err = s.st.InTx(ctx, func(tx store.Store) error {
		existing, err := tx.GetDeviceByMachineID(ctx, org.ID, req.Info.MachineID)
		switch {
		case err == nil:
			// Re-registration of a known machine: a new credential replaces
			// the old one, and the device goes back to pending approval,
			// because anyone holding the organization token can claim a
			// machine id: an admin confirms it is the same box.
			d = existing
			d.CredentialHash = hash
			d.Approval = store.ApprovalPending
			d.Hostname, d.OS, d.Versions, d.Interfaces = rep.Hostname, rep.OS, rep.Versions, rep.Interfaces
			if err := tx.UpdateDevice(ctx, &d); err != nil {
				return err
			}
			status = http.StatusOK
		case errors.Is(err, store.ErrNotFound):
			acc, err := tx.GetAccount(ctx, org.AccountID)
			if err != nil {
				return err
			}
			if acc.DeviceLimit > 0 {
				n, err := tx.CountDevicesInAccount(ctx, acc.ID)
				if err != nil {
					return err
				}
				if n >= acc.DeviceLimit {
					return &httpError{status: http.StatusForbidden, code: CodeDeviceLimit,
						msg: "the account has reached its limit of " + strconv.Itoa(acc.DeviceLimit) + " devices: delete a device or raise the limit"}
				}
			}
			name := rep.Hostname
			if name == "" {
				name = req.Info.MachineID
			}
			d = store.Device{OrgID: org.ID, MachineID: req.Info.MachineID, Name: name, Hostname: rep.Hostname, OS: rep.OS,
				Versions: rep.Versions, Interfaces: rep.Interfaces, CredentialHash: hash}
			if err := tx.CreateDevice(ctx, &d); err != nil {
				return err
			}
		default:
			return err
		}
		details, _ := json.Marshal(map[string]any{"machine_id": d.MachineID, "hostname": d.Hostname, "token_id": tok.ID, "reregistered": status == http.StatusOK})
		return tx.AppendAudit(ctx, &store.AuditEntry{AccountID: org.AccountID, OrgID: org.ID, ActorType: "device", ActorID: d.ID,
			ActorName: d.Name, Action: "device.register", ObjectType: "device", ObjectID: d.ID, Details: details,
			IP: clientIP(r), CreatedAt: s.now().UTC()})
	})
	if errors.Is(err, store.ErrConflict) {
		return zero, 0, &httpError{status: http.StatusConflict, code: "conflict", msg: "another registration of this machine is in progress: retry"}
	}
	if err != nil {
		return zero, 0, err
	}
	s.log.Info("device registered", "org", org.ID, "device", d.ID, "machine_id", d.MachineID, "reregistered", status == http.StatusOK)
	if status == http.StatusOK {
		// Closes a channel still using the old credential; the device is
		// pending again, so its peers drop their tunnels to it.
		s.DeviceChanged(org.ID, d.ID)
		s.DeviceChanged(org.ID, "")
	}
	return devproto.RegisterResponse{DeviceID: d.ID, OrgID: org.ID, Credential: cred, Approval: d.Approval}, status, nil
}

// deviceByCredential authenticates a device channel request.
func (s *Service) deviceByCredential(ctx context.Context, r *http.Request) (store.Device, string, *httpError) {
	h := r.Header.Get("Authorization")
	cred, ok := strings.CutPrefix(h, "Bearer ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.HasPrefix(cred, CredentialPrefix) || len(cred) > 256 {
		return store.Device{}, "", &httpError{status: http.StatusUnauthorized, code: "unauthorized",
			msg: "send Authorization: Bearer <device credential> (tdc_...) from registration"}
	}
	hash := auth.HashSecret(cred)
	d, err := s.st.GetDeviceByCredentialHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, "", &httpError{status: http.StatusUnauthorized, code: "unauthorized",
			msg: "the device credential is not valid (the device was deleted or registered again): register again"}
	}
	if err != nil {
		s.log.Error("device authentication", "err", err)
		return store.Device{}, "", &httpError{status: http.StatusInternalServerError, code: "internal", msg: "internal error: see the server log"}
	}
	return d, hash, nil
}
