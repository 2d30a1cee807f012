// Command exitstart exits with status 3 before the handshake, as a plugin
// that cannot start would.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "exitstart: giving up before the handshake")
	os.Exit(3)
}
