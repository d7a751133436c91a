package server

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/trellis-sdwan/trellis/manage/policy"
)

func isURL(src string) bool {
	u, err := url.Parse(src)
	return src != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// loadCatalog loads --app-catalog at start: a bad file stops the start
// (the operator asked for it), an unreachable or bad URL keeps the
// catalogue in force with a warning (the refresh tries again).
func (s *Server) loadCatalog(ctx context.Context) error {
	src := s.cfg.AppCatalog
	if src == "" {
		return nil
	}
	if err := s.syncCatalog(ctx); err != nil {
		if !isURL(src) {
			return fmt.Errorf("--app-catalog: %w", err)
		}
		s.log.Warn("application catalogue not loaded; keeping the one in force", "source", src, "err", err)
	}
	return nil
}

// syncCatalog fetches --app-catalog and applies it unless the catalogue
// in force is the same version from the same source.
func (s *Server) syncCatalog(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, policy.DefaultFetchLimit)
	defer cancel()
	cat, err := policy.Fetch(fctx, s.cfg.AppCatalog, nil)
	if err != nil {
		return err
	}
	cur, err := policy.LoadCatalog(ctx, s.st)
	if err == nil && cur.Version == cat.Version && cur.Source == cat.Source {
		return nil
	}
	return s.api.ApplyCatalog(ctx, cat, nil)
}

// refreshCatalog fetches a catalogue URL again every AppCatalogRefresh.
func (s *Server) refreshCatalog(ctx context.Context) {
	t := time.NewTicker(s.cfg.AppCatalogRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.syncCatalog(ctx); err != nil {
				s.log.Warn("refreshing the application catalogue; keeping the one in force", "source", s.cfg.AppCatalog, "err", err)
			}
		}
	}
}
