package api

import (
	"net/mail"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// cleanName trims a display name and checks it is 1..max characters
// without control characters.
func cleanName(field, v string, maxLen int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", invalid(field, "%s must not be empty", field)
	}
	return v, cleanText(field, v, maxLen)
}

// cleanText checks an optional free text.
func cleanText(field, v string, maxLen int) error {
	if !utf8.ValidString(v) {
		return invalid(field, "%s must be valid UTF-8", field)
	}
	if utf8.RuneCountInString(v) > maxLen {
		return invalid(field, "%s must be at most %d characters", field, maxLen)
	}
	for _, r := range v {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return invalid(field, "%s must not contain control characters", field)
		}
	}
	return nil
}

func cleanEmail(field, v string) (string, error) {
	v = normEmail(v)
	if v == "" {
		return "", invalid(field, "email is required")
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || len(v) > 254 || !strings.Contains(v[strings.LastIndexByte(v, '@'):], ".") && !strings.HasSuffix(v, "@localhost") {
		return "", invalid(field, "%q is not a valid email address", v)
	}
	return v, nil
}

func checkRole(field string, r store.Role) error {
	if !auth.ValidRole(r) {
		return invalid(field, "role must be owner, manager or viewer")
	}
	return nil
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func checkColor(v string) (string, error) {
	if !colorRE.MatchString(v) {
		return "", invalid("color", "color must be #rrggbb, e.g. #1f77b4")
	}
	return strings.ToLower(v), nil
}

func checkLabelType(v string) error {
	if v != store.LabelTunnel && v != store.LabelDIA {
		return invalid("type", "type must be %q or %q", store.LabelTunnel, store.LabelDIA)
	}
	return nil
}

// checkTunnelRange accepts an IPv4 prefix of /8 to /24 (room for /31 pairs).
func checkTunnelRange(v string) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(v))
	if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 24 {
		return "", invalid("tunnel_range", "tunnel_range must be an IPv4 CIDR between /8 and /24, e.g. 10.100.0.0/16")
	}
	return p.Masked().String(), nil
}

func checkPort(field string, v int) error {
	if v < 1 || v > 65535 {
		return invalid(field, "%s must be between 1 and 65535", field)
	}
	return nil
}
