// Command generate completes JSONL prompts with a trained model, chats on
// the terminal (generate chat) or serves OpenAI's API (generate serve).
// See docs/generate.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/generate"
)

func main() { os.Exit(cli.Run("generate", generate.Main)) }
