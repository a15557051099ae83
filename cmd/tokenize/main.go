// Command tokenize turns prompt/completion records into a token stream with
// a SentencePiece BPE tokenizer; see pkg/tokenize and docs/tokenize.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/tokenize"
)

func main() { os.Exit(cli.Run("tokenize", tokenize.Main)) }
