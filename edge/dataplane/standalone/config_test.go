package standalone

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane/esp"
)

const example = `{
  "tun": {"name": "trellis0", "address": "10.255.0.1/32"},
  "udp_port": 4789,
  "sa_grace": "30s",
  "wans": [{"interface": "eth1", "address": "192.0.2.1"}, {"interface": "eth2"}],
  "tunnels": [
    {
      "name": "b-inet", "site": "B", "vni": 7,
      "wan": {"interface": "eth1", "address": "192.0.2.1"},
      "remote": "192.0.2.2:4789",
      "local": "10.100.0.0", "peer": "10.100.0.1",
      "outbound": {"spi": "0x1001", "key": "000102030405060708090a0b0c0d0e0f10111213"},
      "inbound":  {"spi": 8194, "transform": "aes128cbc-sha256", "esn": false,
                   "key": "000102030405060708090a0b0c0d0e0f",
                   "auth_key": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}
    }
  ],
  "routes": [{"prefix": "172.16.2.0/24", "site": "B"}]
}`

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if c.TUN.Name != "trellis0" || !c.TUN.ManageRoutes || c.SAGrace != 30*time.Second || len(c.Tunnels) != 1 || len(c.Routes) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	if len(c.WANs) != 2 || c.WANs[0].Address.String() != "192.0.2.1" || c.WANs[1].Interface != "eth2" || c.WANs[1].Address.IsValid() {
		t.Fatalf("WANs %+v", c.WANs)
	}
	tu := c.Tunnels[0]
	if tu.VNI != 7 || tu.WANInterface != "eth1" || tu.Remote.String() != "192.0.2.2:4789" || tu.Peer.String() != "10.100.0.1" {
		t.Fatalf("tunnel %+v", tu)
	}
	if tu.Outbound.SPI != 0x1001 || tu.Outbound.Transform != esp.AESGCM128 || !tu.Outbound.ESN || len(tu.Outbound.EncKey) != 20 {
		t.Fatalf("outbound %+v", tu.Outbound)
	}
	if tu.Inbound.SPI != 8194 || tu.Inbound.Transform != esp.AESCBC128SHA256128 || tu.Inbound.ESN || len(tu.Inbound.AuthKey) != 32 {
		t.Fatalf("inbound %+v", tu.Inbound)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, from, to, want string }{
		{"unknown field", `"udp_port"`, `"udp_prot"`, "unknown field"},
		{"bad key hex", `"key": "0001`, `"key": "zz01`, "hex"},
		{"short GCM key", `"000102030405060708090a0b0c0d0e0f10111213"`, `"00010203"`, "key material"},
		{"bad prefix", `172.16.2.0/24`, `172.16.2.0`, "CIDR"},
		{"bad WAN address", `{"interface": "eth2"}`, `{"address": "eth2"}`, "wans[1]"},
		{"IPv6 WAN", `{"interface": "eth2"}`, `{"address": "2001:db8::1"}`, "not IPv4"},
		{"bad remote", `192.0.2.2:4789`, `192.0.2.2`, "address:port"},
		{"bad spi", `"0x1001"`, `"banana"`, "SPI"},
		{"bad transform", `"aes128cbc-sha256"`, `"des"`, "unknown ESP transform"},
		{"not a /31", `"peer": "10.100.0.1"`, `"peer": "10.100.0.5"`, "/31"},
		{"no tun name", `"name": "trellis0"`, `"name": ""`, "tun.name"},
		{"bad duration", `"30s"`, `"soon"`, "duration"},
	}
	for _, tt := range tests {
		in := strings.Replace(example, tt.from, tt.to, 1)
		if in == example {
			t.Fatalf("%s: replacement did not apply", tt.name)
		}
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dp.json")
	if err := os.WriteFile(p, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}
