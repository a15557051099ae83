// Command generate completes JSONL prompts with a trained model, chats on
// the terminal (generate chat) or serves OpenAI's API (generate serve).
// See docs/generate.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/generate"
)

func main() { os.Exit(generate.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
