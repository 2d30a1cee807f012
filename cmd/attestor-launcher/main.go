// Command attestor-launcher confines and starts one check plugin for the
// runtime-attestor daemon, which installs it beside its own executable and
// starts it (never a user) for every plugin process: it reads the rules
// the daemon decided, confines itself (Landlock, seccomp, no_new_privs) and
// executes the plugin file the daemon verified, by descriptor. It links
// only package launcher's few dependencies, so that each plugin start pays
// for a small Go runtime start and none of the daemon's package inits.
package main

import (
	"fmt"
	"os"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch/launcher"
)

func main() {
	launcher.Main() // never returns in launcher mode
	fmt.Fprintf(os.Stderr, "attestor-launcher: started without %s; the runtime-attestor daemon starts this program for each plugin, it is not run by hand\n", launcher.Env)
	os.Exit(2)
}
