package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/trellis-sdwan/trellis/edge/wancheck"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// DocVersion is the version of a document: the hex SHA-256 of its bytes
// exactly as manage sent them in Config.Doc.
func DocVersion(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// VerifyVersion checks that version is the hex SHA-256 of raw. Manage
// hashes the compact JSON it sends (json.Marshal output, which a RawMessage
// keeps byte for byte through the envelope); the compacted form is accepted
// too, so that insignificant white space added on the way never fails a
// document.
func VerifyVersion(version string, raw []byte) error {
	if version == "" {
		return errors.New("config without a version")
	}
	want := strings.ToLower(version)
	if DocVersion(raw) == want {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil && DocVersion(buf.Bytes()) == want {
		return nil
	}
	return fmt.Errorf("config version %s is not the SHA-256 of its document (%s): corrupted or tampered message", version, DocVersion(raw))
}

// DecodeDesired decodes a document strictly: unknown fields, trailing data
// and invalid values are errors, so that an edge never half-applies a
// document written for a newer version.
func DecodeDesired(raw []byte) (*devproto.Desired, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("desired-state document: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d devproto.Desired
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("desired-state document: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("desired-state document: trailing data after the document")
	}
	if err := validateDesired(&d); err != nil {
		return nil, fmt.Errorf("desired-state document: %w", err)
	}
	return &d, nil
}

func validateDesired(d *devproto.Desired) error {
	var errs []error
	if d.VxlanPort < 0 || d.VxlanPort > 65535 {
		errs = append(errs, fmt.Errorf("vxlan_port %d out of range", d.VxlanPort))
	}
	tunnels := map[int]bool{}
	for _, t := range d.Tunnels {
		if t.Number <= 0 || t.Number > 1<<24-1 {
			errs = append(errs, fmt.Errorf("tunnel number %d out of range 1..16777215", t.Number))
			continue
		}
		if tunnels[t.Number] {
			errs = append(errs, fmt.Errorf("tunnel %d listed twice", t.Number))
		}
		tunnels[t.Number] = true
		for _, p := range t.RemotePrefixes {
			if _, err := netip.ParsePrefix(p); err != nil {
				errs = append(errs, fmt.Errorf("tunnel %d: remote prefix %q: %v", t.Number, p, err))
			}
		}
	}
	for _, r := range d.Routes {
		if _, err := netip.ParsePrefix(r.Destination); err != nil {
			errs = append(errs, fmt.Errorf("route %q: %v", r.Destination, err))
			continue
		}
		switch {
		case r.Tunnel != 0 && r.Gateway != "":
			errs = append(errs, fmt.Errorf("route %s: both a gateway and a tunnel", r.Destination))
		case r.Tunnel != 0 && !tunnels[r.Tunnel]:
			errs = append(errs, fmt.Errorf("route %s: tunnel %d is not in the document", r.Destination, r.Tunnel))
		case r.Tunnel == 0 && r.Gateway == "":
			errs = append(errs, fmt.Errorf("route %s: needs a gateway or a tunnel", r.Destination))
		case r.Gateway != "":
			if _, err := netip.ParseAddr(r.Gateway); err != nil {
				errs = append(errs, fmt.Errorf("route %s: gateway %q: %v", r.Destination, r.Gateway, err))
			}
		}
		if r.Metric < 0 {
			errs = append(errs, fmt.Errorf("route %s: negative metric", r.Destination))
		}
	}
	for _, i := range d.Interfaces {
		if i.Name == "" {
			errs = append(errs, errors.New("interface without a name"))
		}
		if i.Address != "" {
			if _, err := netip.ParsePrefix(i.Address); err != nil {
				errs = append(errs, fmt.Errorf("interface %s: address %q: %v", i.Name, i.Address, err))
			}
		}
	}
	if _, err := wancheck.SettingsFrom(d.InternetCheck); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
