package sysinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// CPUTimes is one reading of the aggregate "cpu" line of /proc/stat, in
// clock ticks.
type CPUTimes struct {
	Busy, Total uint64
}

// ParseProcStat reads the aggregate "cpu" line of /proc/stat. Idle time is
// idle + iowait; busy is the rest (guest time is already counted in user).
func ParseProcStat(r io.Reader) (CPUTimes, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		n := min(len(f)-1, len(v))
		for i := 0; i < n; i++ {
			x, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat cpu field %d %q: %w", i+1, f[i+1], err)
			}
			v[i] = x
		}
		var total uint64
		for _, x := range v {
			total += x
		}
		idle := v[3] + v[4]
		return CPUTimes{Busy: total - idle, Total: total}, nil
	}
	if err := sc.Err(); err != nil {
		return CPUTimes{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	return CPUTimes{}, errors.New("/proc/stat has no aggregate cpu line")
}

// CPUBusyPct is the busy share between two readings, 0..100; ok is false
// when there is no interval to measure (first reading, counters reset).
func CPUBusyPct(prev, cur CPUTimes) (pct float64, ok bool) {
	if cur.Total <= prev.Total || cur.Busy < prev.Busy {
		return 0, false
	}
	pct = 100 * float64(cur.Busy-prev.Busy) / float64(cur.Total-prev.Total)
	return min(max(pct, 0), 100), true
}

// ParseMeminfo returns MemTotal and MemAvailable in bytes.
func ParseMeminfo(r io.Reader) (total, avail uint64, err error) {
	sc := bufio.NewScanner(r)
	var haveT, haveA bool
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "MemTotal:" && f[0] != "MemAvailable:") {
			continue
		}
		kb, perr := strconv.ParseUint(f[1], 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("/proc/meminfo %s %q: %w", f[0], f[1], perr)
		}
		if f[0] == "MemTotal:" {
			total, haveT = kb*1024, true
		} else {
			avail, haveA = kb*1024, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	if !haveT || !haveA || total == 0 {
		return 0, 0, errors.New("/proc/meminfo lacks MemTotal or MemAvailable (kernel older than 3.14?)")
	}
	return total, min(avail, total), nil
}

// ParseLoadavg returns the 1-minute load average from /proc/loadavg.
func ParseLoadavg(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) < 1 {
		return 0, errors.New("/proc/loadavg is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("/proc/loadavg load1 %q: not a non-negative number", f[0])
	}
	return v, nil
}

// ParseUptime returns the whole seconds of /proc/uptime's first field.
func ParseUptime(s string) (uint64, error) {
	f := strings.Fields(s)
	if len(f) < 1 {
		return 0, errors.New("/proc/uptime is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("/proc/uptime %q: not a non-negative number", f[0])
	}
	return uint64(v), nil
}

// DiskUsedPct returns the used share of the filesystem holding path, as df
// shows it (blocks reserved for root count as unavailable).
func DiskUsedPct(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	used := st.Blocks - st.Bfree
	denom := used + st.Bavail
	if denom == 0 {
		return 0, nil
	}
	return min(100*float64(used)/float64(denom), 100), nil
}

// HealthSampler reads the box's resource use; it keeps the previous CPU
// reading so each sample reports CPU use since the last one. Not safe for
// concurrent use.
type HealthSampler struct {
	// Proc is the procfs root ("/proc" when empty).
	Proc string
	// DiskPath is the path whose filesystem is measured.
	DiskPath string

	prev    CPUTimes
	hasPrev bool
}

// Sample reads the current health. Parts that can't be read are left zero;
// the error joins what failed. CPU is 0 on the first call (no interval yet).
func (h *HealthSampler) Sample() (devproto.DeviceHealth, error) {
	proc := h.Proc
	if proc == "" {
		proc = "/proc"
	}
	var hl devproto.DeviceHealth
	var errs []error
	if f, err := os.Open(proc + "/stat"); err != nil {
		errs = append(errs, err)
	} else {
		cur, err := ParseProcStat(f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
		} else {
			if h.hasPrev {
				hl.CPUPct, _ = CPUBusyPct(h.prev, cur)
			}
			h.prev, h.hasPrev = cur, true
		}
	}
	if f, err := os.Open(proc + "/meminfo"); err != nil {
		errs = append(errs, err)
	} else {
		total, avail, err := ParseMeminfo(f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
		} else {
			hl.MemTotalBytes = total
			hl.MemUsedPct = 100 * float64(total-avail) / float64(total)
		}
	}
	if b, err := os.ReadFile(proc + "/loadavg"); err != nil {
		errs = append(errs, err)
	} else if v, err := ParseLoadavg(string(b)); err != nil {
		errs = append(errs, err)
	} else {
		hl.Load1 = v
	}
	if b, err := os.ReadFile(proc + "/uptime"); err != nil {
		errs = append(errs, err)
	} else if v, err := ParseUptime(string(b)); err != nil {
		errs = append(errs, err)
	} else {
		hl.UptimeSeconds = v
	}
	if h.DiskPath != "" {
		if v, err := DiskUsedPct(h.DiskPath); err != nil {
			errs = append(errs, err)
		} else {
			hl.DiskUsedPct = v
		}
	}
	return hl, errors.Join(errs...)
}
