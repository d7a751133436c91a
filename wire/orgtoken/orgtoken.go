// Package orgtoken implements the organization token that provisions edges
// of one organization (zero touch):
//
//	trellis1.<base64url(JSON payload)>.<base64url(Ed25519 signature)>
//
// The signature covers the bytes "trellis1.<base64url(payload)>". The payload
// carries the token id, the organization id, manage's base URL and the
// SHA-256 fingerprint of manage's TLS certificate, so an edge holding only
// the token can reach and authenticate manage. manage signs; the edge parses
// (it has no key to verify with and relies on the certificate pin); manage
// verifies on every registration and also checks the token is not revoked.
package orgtoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Prefix starts every version-1 token.
const Prefix = "trellis1"

// Version is the payload version this package writes and reads.
const Version = 1

// MaxLen bounds the token text accepted by Parse.
const MaxLen = 4096

// Payload is the signed content of a token.
type Payload struct {
	V   int    `json:"v"`
	TID string `json:"tid"` // token id
	Org string `json:"org"` // organization id
	URL string `json:"url"` // manage base URL, https://host:port
	FP  string `json:"fp"`  // hex SHA-256 of manage's TLS certificate (DER)
	IAT int64  `json:"iat"` // issued at, unix seconds
}

// IssuedAt returns IAT as a time.
func (p Payload) IssuedAt() time.Time { return time.Unix(p.IAT, 0).UTC() }

// Errors returned (wrapped) by Parse and Verify.
var (
	ErrMalformed    = errors.New("malformed organization token")
	ErrVersion      = errors.New("unsupported organization token version")
	ErrBadSignature = errors.New("organization token signature is invalid")
)

var enc = base64.RawURLEncoding

// Validate checks the payload fields.
func (p Payload) Validate() error {
	if p.V != Version {
		return fmt.Errorf("%w: payload version %d, this build reads %d", ErrVersion, p.V, Version)
	}
	if p.TID == "" || p.Org == "" {
		return fmt.Errorf("%w: token id and organization id are required", ErrMalformed)
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: manage URL %q is not an absolute http(s) URL", ErrMalformed, p.URL)
	}
	if p.FP != "" {
		if b, err := hex.DecodeString(p.FP); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: certificate fingerprint must be 64 hex digits", ErrMalformed)
		}
	}
	return nil
}

// Sign validates p and returns the token text signed with key.
func Sign(p Payload, key ed25519.PrivateKey) (string, error) {
	if p.V == 0 {
		p.V = Version
	}
	p.FP = strings.ToLower(p.FP)
	if err := p.Validate(); err != nil {
		return "", err
	}
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("organization token signing key has the wrong size")
	}
	js, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding token payload: %w", err)
	}
	signed := Prefix + "." + enc.EncodeToString(js)
	sig := ed25519.Sign(key, []byte(signed))
	return signed + "." + enc.EncodeToString(sig), nil
}

// Token is a parsed, not yet verified token.
type Token struct {
	Payload   Payload
	signed    []byte
	signature []byte
}

// Parse decodes token text without checking the signature. Surrounding
// white space (a token file's newline) is ignored.
func Parse(text string) (Token, error) {
	text = strings.TrimSpace(text)
	if len(text) > MaxLen {
		return Token{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLen)
	}
	parts := strings.Split(text, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: want three dot-separated parts", ErrMalformed)
	}
	if parts[0] != Prefix {
		if strings.HasPrefix(parts[0], "trellis") {
			return Token{}, fmt.Errorf("%w: %q", ErrVersion, parts[0])
		}
		return Token{}, fmt.Errorf("%w: does not start with %q", ErrMalformed, Prefix+".")
	}
	js, err := enc.DecodeString(parts[1])
	if err != nil {
		return Token{}, fmt.Errorf("%w: payload is not base64url: %v", ErrMalformed, err)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Token{}, fmt.Errorf("%w: signature is not a base64url Ed25519 signature", ErrMalformed)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Token{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Token{}, fmt.Errorf("%w: trailing data after payload", ErrMalformed)
	}
	if err := p.Validate(); err != nil {
		return Token{}, err
	}
	return Token{Payload: p, signed: []byte(parts[0] + "." + parts[1]), signature: sig}, nil
}

// Verify checks the signature with manage's public key.
func (t Token) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || t.signed == nil {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, t.signed, t.signature) {
		return ErrBadSignature
	}
	return nil
}

// ParseVerify parses text and checks its signature.
func ParseVerify(text string, pub ed25519.PublicKey) (Payload, error) {
	t, err := Parse(text)
	if err != nil {
		return Payload{}, err
	}
	if err := t.Verify(pub); err != nil {
		return Payload{}, err
	}
	return t.Payload, nil
}
