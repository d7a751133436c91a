package natprobe

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxText is the longest error or server text a result reports (bytes):
// manage keeps at most 512.
const MaxText = 512

// OneLine makes s fit a report field: one line of printable characters
// (line breaks and tabs become spaces, other control or invalid
// characters are dropped, runs of spaces collapse) of at most max bytes,
// cut on a character boundary. Errors from the network stack can carry
// newlines (wrapped multi-line messages); manage rejects a report whose
// text is not printable, and with it every later interface change.
func OneLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	return out
}
