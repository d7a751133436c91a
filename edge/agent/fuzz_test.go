package agent

import (
	"testing"
)

// FuzzDecodeDesired: any bytes from manage decode to an error or to a
// document that converts to a data plane configuration without panicking.
func FuzzDecodeDesired(f *testing.F) {
	f.Add([]byte(`{"device_id":"d","name":"n","routes":[{"destination":"10.0.0.0/8","gateway":"192.0.2.1"}]}`))
	f.Add([]byte(`{"tunnels":[{"number":1,"peer_device_id":"B","local_interface":"eth0","local_address":"192.0.2.1","remote_endpoint":"192.0.2.2:4789","local_overlay":"10.100.0.0","remote_overlay":"10.100.0.1","outbound":{"spi":4097,"key":"1111111111111111111111111111111111111111"},"inbound":{"spi":8193,"key":"1111111111111111111111111111111111111111"},"remote_prefixes":["172.16.0.0/24"]}],"routes":[{"destination":"10.1.0.0/16","tunnel":1}]}`))
	f.Add([]byte(`{"vxlan_port":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = VerifyVersion(DocVersion(raw), raw)
		d, err := DecodeDesired(raw)
		if err != nil {
			return
		}
		if d == nil {
			t.Fatal("nil document without error")
		}
		_, _ = DataplaneConfig(d, "tagfuzz0")
		_, _ = gatewayRoutes(d)
	})
}
