// Command weightdiff makes, recovers and verifies weight diffs (see
// docs/weightdiff.md).
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/weightdiff"
)

func main() { os.Exit(weightdiff.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
