package network

import (
	"testing"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestValidateInternetCheck(t *testing.T) {
	good := DefaultInternetCheck()
	tests := []struct {
		name  string
		edit  func(c *devproto.InternetCheck)
		field string // "" valid
	}{
		{"defaults", func(c *devproto.InternetCheck) {}, ""},
		{"no targets: off", func(c *devproto.InternetCheck) { c.Targets = nil }, ""},
		{"loopback (tests)", func(c *devproto.InternetCheck) { c.Targets = []string{"127.0.0.1"} }, ""},
		{"four targets", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"} }, ""},
		{"five targets", func(c *devproto.InternetCheck) {
			c.Targets = []string{"1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1", "8.8.4.4"}
		}, "targets"},
		{"a name", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.1", "dns.google"} }, "targets[1]"},
		{"IPv6", func(c *devproto.InternetCheck) { c.Targets = []string{"2606:4700::1111"} }, "targets[0]"},
		{"multicast", func(c *devproto.InternetCheck) { c.Targets = []string{"224.0.0.1"} }, "targets[0]"},
		{"broadcast", func(c *devproto.InternetCheck) { c.Targets = []string{"255.255.255.255"} }, "targets[0]"},
		{"unspecified", func(c *devproto.InternetCheck) { c.Targets = []string{"0.0.0.0"} }, "targets[0]"},
		{"link-local", func(c *devproto.InternetCheck) { c.Targets = []string{"169.254.1.1"} }, "targets[0]"},
		{"a prefix", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.0/24"} }, "targets[0]"},
		{"twice", func(c *devproto.InternetCheck) { c.Targets = []string{"1.1.1.1", "1.1.1.1"} }, "targets[1]"},
		{"interval 0", func(c *devproto.InternetCheck) { c.IntervalSeconds = 0 }, "interval_s"},
		{"interval 301", func(c *devproto.InternetCheck) { c.IntervalSeconds = 301 }, "interval_s"},
		{"timeout 99", func(c *devproto.InternetCheck) { c.TimeoutMillis = 99 }, "timeout_ms"},
		{"timeout 10001", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis = 60, 10001 }, "timeout_ms"},
		{"timeout = interval", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis = 1, 1000 }, "timeout_ms"},
		{"timeout just below", func(c *devproto.InternetCheck) { c.IntervalSeconds, c.TimeoutMillis = 1, 999 }, ""},
		{"fail rounds 0", func(c *devproto.InternetCheck) { c.FailRounds = 0 }, "fail_rounds"},
		{"fail rounds 21", func(c *devproto.InternetCheck) { c.FailRounds = 21 }, "fail_rounds"},
		{"fail rounds 20", func(c *devproto.InternetCheck) { c.FailRounds = 20 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Targets = append([]string{}, good.Targets...)
			tt.edit(&c)
			if got := fieldOf(ValidateInternetCheck(c)); got != tt.field {
				t.Fatalf("field %q, want %q (%v)", got, tt.field, ValidateInternetCheck(c))
			}
		})
	}
}

func TestParseInternetTargets(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"1.1.1.1,8.8.8.8", []string{"1.1.1.1", "8.8.8.8"}, false},
		{" 1.1.1.1 , 8.8.8.8 ,", []string{"1.1.1.1", "8.8.8.8"}, false},
		{"off", []string{}, false},
		{"none", []string{}, false},
		{"", nil, true},
		{",", nil, true},
		{"1.1.1.1,example.com", nil, true},
		{"224.0.0.1", nil, true},
		{"1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4,9.9.9.9", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseInternetTargets(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("%q: err %v, want bad %v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad && (len(got) != len(tt.want) || got == nil) {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
		for i := range tt.want {
			if got[i] != tt.want[i] {
				t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
			}
		}
	}
}

func TestInternetCheckInForce(t *testing.T) {
	if InternetCheckInForce(nil) != nil || InternetCheckInForce(&devproto.InternetCheck{IntervalSeconds: 10}) != nil {
		t.Fatal("no targets must give no check")
	}
	c := DefaultInternetCheck()
	got := InternetCheckInForce(&c)
	c.Targets[0] = "9.9.9.9"
	if got == nil || got.Targets[0] != "1.1.1.1" || got.IntervalSeconds != DefaultCheckInterval {
		t.Fatalf("in force: %+v (must be a copy)", got)
	}
}
