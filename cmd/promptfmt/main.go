// Command promptfmt turns instruction records into Alpaca-style training
// prompts, inference prompts, or extracted responses. See docs/promptfmt.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/promptfmt"
)

func main() {
	os.Exit(cli.Run("promptfmt", promptfmt.Main))
}
