package testbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// PrebuiltDir is where Prebuild puts the executables, under the module root.
const PrebuiltDir = "bin/test"

// stampName is the file in PrebuiltDir that says what its executables were
// built from: the source hash on the first line, then one package a line.
const stampName = "stamp"

// buildCmd is the one go build command line of the tests' executables
// (Build and Prebuild alike): static unless cgo is "1", as `make build`
// ships them and as the sandbox wants them (docs/deployment.md), and with
// the build tags of `make build`. out is a file, or a folder ending in "/"
// for several packages.
func buildCmd(root, cgo, out string, pkgs ...string) *exec.Cmd {
	cmd := exec.Command("go", append([]string{"build", "-tags=grpcnotrace", "-o", out}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	return cmd
}

// SourceHash is the SHA-256 of everything a build of the module's
// executables depends on: the go toolchain and the settings it builds with,
// the build command line, and every file of the module tree except tests
// (*_test.go), the .git folder and the build outputs (bin/, .run/).
func SourceHash(root, cgo string) (string, error) {
	h := sha256.New()
	env, err := exec.Command("go", "env", "GOVERSION", "GOOS", "GOARCH", "GOAMD64", "GOFLAGS", "GOEXPERIMENT", "GOTOOLCHAIN").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	fmt.Fprintf(h, "env\x00%s\x00cmd\x00%q\x00", env, buildCmd(root, cgo, "OUT").Args)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir() && (rel == ".git" || rel == "bin" || rel == ".run"):
			return filepath.SkipDir
		case d.IsDir() || strings.HasSuffix(rel, "_test.go"):
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			fmt.Fprintf(h, "link\x00%s\x00%s\x00", rel, target)
			return err
		case !d.Type().IsRegular():
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "file\x00%s\x00", rel)
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		_, err = h.Write([]byte{0})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hashing the module tree: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Prebuild builds the main packages pkgs (relative to root, e.g.
// "./cmd/attestctl") in one parallel go build into root/PrebuiltDir, each
// named after its folder, and writes the stamp last, so that Build takes
// them while the tree stays as it was. The tree changing during the build
// leaves no stamp.
func Prebuild(root string, pkgs []string) error {
	dir := filepath.Join(root, PrebuiltDir)
	stamp := filepath.Join(dir, stampName)
	if err := os.Remove(stamp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	before, err := SourceHash(root, "0")
	if err != nil {
		return err
	}
	cmd := buildCmd(root, "0", dir+"/", pkgs...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, stderr.String())
	}
	after, err := SourceHash(root, "0")
	if err != nil {
		return err
	}
	if after != before {
		return errors.New("the module tree changed during the build; run it again")
	}
	lines := []string{after}
	for _, p := range pkgs {
		lines = append(lines, path.Clean(p))
	}
	tmp := stamp + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, stamp)
}

var (
	stampOnce sync.Once
	stampPkgs []string // packages prebuilt from the tree as it is; nil if none
)

// prebuilt returns the executable Prebuild made of pkg, or "" when there is
// none or the tree has changed since (the stamp's hash is not the tree's).
func prebuilt(root, pkg, cgo string) string {
	if cgo != "0" {
		return ""
	}
	stampOnce.Do(func() { stampPkgs = readStamp(root) })
	p := path.Clean(pkg)
	if !slices.Contains(stampPkgs, p) {
		return ""
	}
	return filepath.Join(root, PrebuiltDir, path.Base(p))
}

// readStamp returns the packages of root's stamp when its hash is the
// tree's, else nil.
func readStamp(root string) []string {
	data, err := os.ReadFile(filepath.Join(root, PrebuiltDir, stampName))
	if err != nil {
		return nil
	}
	lines := strings.Fields(string(data))
	if len(lines) < 2 {
		return nil
	}
	if sum, err := SourceHash(root, "0"); err != nil || sum != lines[0] {
		return nil
	}
	return lines[1:]
}

// linkOrCopy makes dst a hard link to src, or a copy where links fail.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}
