// Command teachersim is an OpenAI-compatible teacher simulator; see
// pkg/teachersim and docs/seedgen.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/teachersim"
)

func main() { os.Exit(teachersim.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
