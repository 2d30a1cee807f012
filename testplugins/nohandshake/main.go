// Command nohandshake starts but never completes the handshake: the daemon
// gives up after its start timeout and reports core.plugin_timeout.
package main

import "time"

func main() {
	for {
		time.Sleep(time.Hour)
	}
}
