package policy

import (
	"slices"
	"strings"
	"testing"
)

func TestPluginSandbox(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`plugins:
  vendor_x:
    sandbox:
      read_only: [/etc/vendor-x, /var/lib/vendor-x/state.json]
      exec: [/usr/bin/vendor-x-probe]
      devices: [/dev/vendor0]
      unix_sockets: ["/run/vendor-x.sock"]
      bind_tcp: [8600]
      connect_tcp: [443, 65535]
`))
	if err != nil {
		t.Fatal(err)
	}
	sb := p.Plugins["vendor_x"].Sandbox
	if !slices.Equal(sb.ReadOnly, []string{"/etc/vendor-x", "/var/lib/vendor-x/state.json"}) ||
		!slices.Equal(sb.Exec, []string{"/usr/bin/vendor-x-probe"}) || !slices.Equal(sb.Devices, []string{"/dev/vendor0"}) ||
		!slices.Equal(sb.UnixSockets, []string{"/run/vendor-x.sock"}) || !slices.Equal(sb.BindTCP, []uint16{8600}) ||
		!slices.Equal(sb.ConnectTCP, []uint16{443, 65535}) {
		t.Fatalf("sandbox = %+v", sb)
	}
	for i, tc := range []struct{ yaml, key string }{
		{"plugins:\n  x:\n    sandbox:\n      read_only: [etc/relative]\n", "plugins.x.sandbox.read_only[0]"},
		{"plugins:\n  x:\n    sandbox:\n      read_only: [/etc/../etc]\n", "plugins.x.sandbox.read_only[0]"},
		{"plugins:\n  x:\n    sandbox:\n      write: [/tmp]\n", "plugins.x.sandbox.write"},
		{"plugins:\n  x:\n    sandbox:\n      exec: /bin/true\n", "plugins.x.sandbox.exec"},
		{"plugins:\n  x:\n    sandbox: [/tmp]\n", "plugins.x.sandbox"},
		{"plugins:\n  x:\n    sandbox:\n      devices: [1]\n", "plugins.x.sandbox.devices[0]"},
		{"plugins:\n  x:\n    sandbox:\n      connect_tcp: [0]\n", "plugins.x.sandbox.connect_tcp[0]"},
		{"plugins:\n  x:\n    sandbox:\n      connect_tcp: [65536]\n", "plugins.x.sandbox.connect_tcp[0]"},
		{"plugins:\n  x:\n    sandbox:\n      bind_tcp: [\"80\"]\n", "plugins.x.sandbox.bind_tcp[0]"},
		{"plugins:\n  x:\n    sandbox:\n      bind_tcp: 80\n", "plugins.x.sandbox.bind_tcp"},
		{"plugins:\n  x:\n    sandbox:\n      connect_tcp: [-1]\n", "plugins.x.sandbox.connect_tcp[0]"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Test %d: Parse = %v, want an error naming %s", i, err, tc.key)
		}
	}
}
