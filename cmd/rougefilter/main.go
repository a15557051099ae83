// Command rougefilter removes near-duplicate records by ROUGE-L, exactly as
// the Stanford Alpaca generator does. See docs/rougefilter.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/rougefilter"
)

func main() {
	os.Exit(cli.Run("rougefilter", rougefilter.Main))
}
