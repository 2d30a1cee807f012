package daemon

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/policy"
)

// declareCacheDir is the folder where the daemon keeps the plugins'
// declarations across restarts: declare/ beside the signing key (the
// unit's StateDirectory= secure-ai/identity, 0700, the service's alone),
// "" when the policy names no signing key. No plugin's grant may reach it
// (exposes): a plugin that could write it could widen a built-in's
// sandbox at the next start.
func declareCacheDir(pol *policy.Policy) string {
	if pol.SigningKeyPath == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(pol.SigningKeyPath)), "declare")
}

// declareCacheFile is the declarations' cache file in declareCacheDir, ""
// without one.
func declareCacheFile(pol *policy.Policy) string { return cacheFile(pol, pluginhost.DeclareCacheFile) }

// digestCacheFile is the plugin digests' cache file in declareCacheDir, ""
// without one.
func digestCacheFile(pol *policy.Policy) string { return cacheFile(pol, pluginhost.DigestCacheFile) }

func cacheFile(pol *policy.Policy, name string) string {
	dir := declareCacheDir(pol)
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, name)
}

// declarerOptions are the daemon's Declarer options under pol, the policy
// it starts with: the declare cache in declareCacheDir, its MAC keyed from
// the HMAC key (hmac_key_path), which no plugin may read. Without a
// readable key or a signing key folder, declarations are kept in memory
// only.
func declarerOptions(pol *policy.Policy, log hclog.Logger) pluginhost.DeclarerOptions {
	o := pluginhost.DeclarerOptions{Logger: log, LogLevel: pol.LogLevel}
	dir := declareCacheDir(pol)
	if dir == "" {
		log.Info(`signing_key_path is "": plugin declarations are not kept across restarts`)
		return o
	}
	key, err := regfile.Read(pol.HMACKeyPath, 64<<10)
	if err != nil || len(key) < engine.MinHMACKeyBytes {
		log.Warn("the HMAC key is unusable: plugin declarations are not kept across restarts", "path", pol.HMACKeyPath, "error", err)
		return o
	}
	o.CacheDir, o.CacheSecret = dir, key
	return o
}

// saveDeclarations writes the declarer's cache file. Once the daemon's
// sandbox is applied the folder is read-only to it (its rules grant the
// signing key's folder read access): a declaration learnt at a reload is
// then kept in memory only, and recomputed at the next start.
func (d *daemon) saveDeclarations() {
	err := d.declarer.Save()
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrPermission):
		d.logger.Debug("declarations not kept across restarts", "error", err)
	default:
		d.logger.Warn("declarations not kept across restarts: the plugins declare again at the next start", "error", err)
	}
}
