// Command trainer fine-tunes a LLaMA-architecture model on a token stream;
// `trainer init` makes a base model, `trainer plot` draws metrics. See
// docs/trainer.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/train"
)

func main() { os.Exit(cli.Run("trainer", train.Main)) }
