// Package webui serves the trellis-manage web interface: hand-written
// JavaScript modules, CSS and one HTML page, embedded in the binary so the
// UI works offline (no CDN, no external fonts). The UI talks only to the
// documented REST API under /api/v1; it has no endpoints of its own.
//
// Every answer carries a strict Content-Security-Policy (scripts, styles,
// images and connections from this origin only; no inline script), and
// nosniff, no-referrer and frame-denying headers. Paths that are not an
// asset fall back to index.html so client-side routes survive a reload;
// a missing asset (a path under /assets/) is a 404.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every UI answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded asset with what is needed to serve it.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the embedded UI.
type Handler struct {
	files   map[string]file // by URL path ("/index.html", "/assets/app.js")
	modTime time.Time
}

// New loads the embedded assets. It fails only if the binary was built
// without them.
func New() (*Handler, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("webui: embedded assets: %w", err)
	}
	h := &Handler{files: map[string]file{}, modTime: time.Now().UTC().Truncate(time.Second)}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		ct := contentType(p)
		sum := sha256.Sum256(b)
		h.files["/"+p] = file{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webui: reading embedded assets: %w", err)
	}
	if _, ok := h.files["/index.html"]; !ok {
		return nil, fmt.Errorf("webui: index.html is not embedded")
	}
	return h, nil
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".webmanifest":
		return "application/json"
	}
	if ct := mime.TypeByExtension(path.Ext(p)); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// ServeHTTP serves GET and HEAD: an asset, or index.html for any other
// path outside /assets/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	f, ok := h.files[p]
	switch {
	case ok && p != "/index.html":
		// Assets keep their names across releases: the browser may reuse
		// them but revalidates (ETag) so an upgrade is seen at once.
		hd.Set("Cache-Control", "no-cache")
	case strings.HasPrefix(p, "/assets/") || p == "/api" || strings.HasPrefix(p, "/api/"):
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	default:
		f = h.files["/index.html"]
		hd.Set("Cache-Control", "no-store")
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, "", h.modTime, bytes.NewReader(f.body))
}
