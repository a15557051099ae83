// Command weightdiff makes, recovers and verifies weight diffs (see
// docs/weightdiff.md).
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/weightdiff"
)

func main() { os.Exit(cli.Run("weightdiff", weightdiff.Main)) }
