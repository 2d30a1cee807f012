// Command foreignsock serves nothing: it announces a socket foreign.sock
// that another process serves, inside its socket folder when one is there,
// else in the folder's parent (outside its own folder). The host must
// refuse to talk to either.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/secure-ai/runtime-attestor/internal/wire"
)

func main() {
	dir := os.Getenv(goplugin.EnvUnixSocketDir)
	addr := filepath.Join(dir, "foreign.sock")
	if _, err := os.Lstat(addr); err != nil {
		addr = filepath.Join(filepath.Dir(dir), "foreign.sock")
	}
	fmt.Printf("%d|%d|unix|%s|grpc|\n", goplugin.CoreProtocolVersion, wire.ProtocolVersion, addr)
	time.Sleep(time.Minute)
}
