// Package pluginname is the one rule for a check plugin's name, which the
// policy (plugins.<name>) and the plugin protocol (a plugin's description)
// both enforce: lowercase letters, digits and '_', starting with a letter,
// at most 63 bytes. It is the part after "attestor-check-" in the plugin
// executable's name. Standard library only.
package pluginname

import "regexp"

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Valid reports whether name is a valid plugin name.
func Valid(name string) bool { return nameRE.MatchString(name) }
