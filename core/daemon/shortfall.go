package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/policy"
)

// shortfall says what plugin name declares (declared) that its grant does
// not hold, as the policy lines that would grant it, and which declared
// paths no policy line may grant (the daemon's own files); "" when the
// grant holds the whole declaration.
func shortfall(pol *policy.Policy, name string, declared, granted sandbox.Rules) string {
	type list struct {
		key     string
		paths   []string
		covered func(string) bool
		access  sandbox.Access
	}
	lists := []list{
		{"read_only", declared.ReadOnly, func(p string) bool { return granted.Covers(p, sandbox.Read) }, sandbox.Read},
		{"read_write", declared.ReadWrite, func(p string) bool { return granted.Covers(p, sandbox.Write) }, sandbox.Write},
		{"exec", declared.Exec, func(p string) bool { return granted.Covers(p, sandbox.Execute) }, sandbox.Execute},
		{"devices", declared.Devices, func(p string) bool { return slices.Contains(granted.Devices, p) }, sandbox.Write},
		{"unix_sockets", declared.UnixSockets, func(p string) bool { return slices.Contains(granted.UnixSockets, p) }, sandbox.Write},
	}
	var lines, never []string
	for _, l := range lists {
		var want []string
		for _, p := range l.paths {
			switch {
			case l.covered(p):
			case exposes(pol, single(l.key, p)) != nil:
				never = append(never, p)
			default:
				want = append(want, strconv.Quote(p))
			}
		}
		if len(want) > 0 {
			lines = append(lines, fmt.Sprintf("plugins.%s.sandbox.%s: [%s]", name, l.key, strings.Join(want, ", ")))
		}
	}
	for _, l := range []struct {
		key             string
		declared, grant []uint16
	}{{"bind_tcp", declared.BindTCP, granted.BindTCP}, {"connect_tcp", declared.ConnectTCP, granted.ConnectTCP}} {
		var want []string
		for _, port := range l.declared {
			if !slices.Contains(l.grant, port) {
				want = append(want, strconv.Itoa(int(port)))
			}
		}
		if len(want) > 0 {
			lines = append(lines, fmt.Sprintf("plugins.%s.sandbox.%s: [%s]", name, l.key, strings.Join(want, ", ")))
		}
	}
	return shortfallMessage(name, lines, never)
}

// single is a grant of path in the list called key.
func single(key, path string) sandbox.Rules {
	switch key {
	case "read_only":
		return sandbox.Rules{ReadOnly: []string{path}}
	case "exec":
		return sandbox.Rules{Exec: []string{path}}
	case "devices":
		return sandbox.Rules{Devices: []string{path}}
	case "unix_sockets":
		return sandbox.Rules{UnixSockets: []string{path}}
	}
	return sandbox.Rules{ReadWrite: []string{path}}
}

func shortfallMessage(name string, lines, never []string) string {
	if len(lines) == 0 && len(never) == 0 {
		return ""
	}
	msg := fmt.Sprintf("the plugin's executable declares a sandbox its policy does not grant; it runs with plugins.%s.sandbox only, and what Measure needs beyond it is denied", name)
	if len(lines) > 0 {
		msg += ". To grant what it declares, add to the policy: " + strings.Join(lines, "; ")
	}
	if len(never) > 0 {
		msg += ". Never granted, files only the daemon may touch: " + strings.Join(never, ", ")
	}
	return msg
}
