// Command seedgen generates instruction data with a teacher model
// (self-instruct, as Stanford Alpaca); see pkg/selfinstruct and docs/seedgen.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
)

func main() { os.Exit(cli.Run("seedgen", selfinstruct.Main)) }
