// Command seedgen generates instruction data with a teacher model
// (self-instruct, as Stanford Alpaca); see pkg/selfinstruct and docs/seedgen.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/selfinstruct"
)

func main() { os.Exit(selfinstruct.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
