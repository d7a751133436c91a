package devices

import (
	"sync"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// DeviceStats is the latest stats report of a device.
type DeviceStats struct {
	At    time.Time      `json:"at"`
	Stats devproto.Stats `json:"stats"`
}

// statsStore keeps the latest stats per device in memory (time series are
// a later issue).
type statsStore struct {
	mu sync.RWMutex
	m  map[string]DeviceStats
}

func newStatsStore() *statsStore { return &statsStore{m: map[string]DeviceStats{}} }

func (s *statsStore) put(deviceID string, st devproto.Stats, at time.Time) {
	s.mu.Lock()
	s.m[deviceID] = DeviceStats{At: at.UTC(), Stats: st}
	s.mu.Unlock()
}

func (s *statsStore) forget(deviceID string) {
	s.mu.Lock()
	delete(s.m, deviceID)
	s.mu.Unlock()
}

// LatestStats returns the device's last stats report, if any.
func (s *Service) LatestStats(deviceID string) (DeviceStats, bool) {
	s.stats.mu.RLock()
	defer s.stats.mu.RUnlock()
	st, ok := s.stats.m[deviceID]
	return st, ok
}

// StatsOf is LatestStats in the shape of the API's DeviceStats hook.
func (s *Service) StatsOf(deviceID string) (time.Time, devproto.Stats, bool) {
	st, ok := s.LatestStats(deviceID)
	return st.At, st.Stats, ok
}
