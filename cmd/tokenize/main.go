// Command tokenize turns prompt/completion records into a token stream with
// a SentencePiece BPE tokenizer; see pkg/tokenize and docs/tokenize.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/tokenize"
)

func main() { os.Exit(tokenize.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
