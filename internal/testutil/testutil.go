// Package testutil holds the helpers that several packages' tests share:
// finding the module root and the read-only data in ../shared/data.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot is the directory holding go.mod, found from the working
// directory upwards ("" when there is none).
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// SharedDataPath is the path of name in ../shared/data beside the module
// root, and whether that file exists.
func SharedDataPath(name string) (string, bool) {
	root := RepoRoot()
	if root == "" {
		return "", false
	}
	p := filepath.Join(root, "..", "shared", "data", name)
	_, err := os.Stat(p)
	return p, err == nil
}

// SharedData returns the path of name in ../shared/data, or skips the test
// with a message saying so when it is absent (the shared data is not part of
// the repository and its licences forbid copying it in).
func SharedData(tb testing.TB, name string) string {
	tb.Helper()
	p, ok := SharedDataPath(name)
	if !ok {
		tb.Skipf("../shared/data/%s is absent (shared data is not part of this checkout): skipping", name)
	}
	return p
}
