package generate

import (
	"os"
	"testing"
)

var tempRoot string

func osMkdirTemp() (string, error) { return tempRoot, nil }

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "generate-test-")
	if err != nil {
		panic(err)
	}
	tempRoot = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}
