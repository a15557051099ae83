// Command rougefilter removes near-duplicate records by ROUGE-L, exactly as
// the Stanford Alpaca generator does. See docs/rougefilter.md.
package main

import (
	"os"

	"github.com/alpaca-go/alpaca/pkg/rougefilter"
)

func main() {
	os.Exit(rougefilter.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
