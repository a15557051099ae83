package promptfmt

import (
	"github.com/alpaca-go/alpaca/internal/testutil"
	"os"
)

// repoRoot walks up from the package directory to go.mod.
func repoRoot() string {
	if root := testutil.RepoRoot(); root != "" {
		return root
	}
	dir, _ := os.Getwd()
	return dir
}
