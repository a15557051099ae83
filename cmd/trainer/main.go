// Command trainer fine-tunes a LLaMA-architecture model on a token stream;
// `trainer init` makes a base model, `trainer plot` draws metrics. See
// docs/trainer.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/train"
)

func main() { os.Exit(train.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
