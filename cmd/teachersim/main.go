// Command teachersim is an OpenAI-compatible teacher simulator; see
// pkg/teachersim and docs/seedgen.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/teachersim"
)

func main() { os.Exit(cli.Run("teachersim", teachersim.Main)) }
