package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// Bearer secret prefixes.
const (
	SessionPrefix    = "tss_"
	AccessKeyPrefix  = "tak_"
	InvitationPrefix = "tiv_"
)

// lower-case base32 without padding: URL- and shell-safe, no '_' so it can
// be used between '_' separators.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RandomString returns n random bytes encoded in lower-case base32.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics itself).
		panic("crypto/rand: " + err.Error())
	}
	return b32.EncodeToString(b)
}

// HashSecret returns the hex SHA-256 of a high-entropy secret. Only such
// hashes are stored for sessions, access keys, invitations and org tokens.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// EqualHash compares two hex hashes in constant time.
func EqualHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// NewSessionToken returns a new session bearer token (tss_...) and its hash.
func NewSessionToken() (token, hash string) {
	token = SessionPrefix + RandomString(32)
	return token, HashSecret(token)
}

// NewInvitationToken returns a new invitation token (tiv_...) and its hash.
func NewInvitationToken() (token, hash string) {
	token = InvitationPrefix + RandomString(32)
	return token, HashSecret(token)
}

// AccessKeyPrefixLen is the length of the public prefix of an access key.
const AccessKeyPrefixLen = 10

// NewAccessKey returns a new access key tak_<prefix>_<secret>, its public
// prefix and the hash of its secret part.
func NewAccessKey() (key, prefix, secretHash string) {
	prefix = RandomString(10)[:AccessKeyPrefixLen]
	secret := RandomString(32)
	return AccessKeyPrefix + prefix + "_" + secret, prefix, HashSecret(secret)
}

// ErrMalformedKey is returned for a bearer token that is not an access key.
var ErrMalformedKey = errors.New("malformed access key")

// ParseAccessKey splits tak_<prefix>_<secret> and returns the prefix and the
// hash of the secret.
func ParseAccessKey(key string) (prefix, secretHash string, err error) {
	rest, ok := strings.CutPrefix(key, AccessKeyPrefix)
	if !ok {
		return "", "", ErrMalformedKey
	}
	prefix, secret, ok := strings.Cut(rest, "_")
	if !ok || len(prefix) != AccessKeyPrefixLen || len(secret) != accessKeySecretLen || !isB32(prefix) || !isB32(secret) {
		return "", "", ErrMalformedKey
	}
	return prefix, HashSecret(secret), nil
}

func isB32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// accessKeySecretLen is the length of base32(32 random bytes).
const accessKeySecretLen = 52
