package train

import (
	"fmt"
	"sort"
	"strings"

	"github.com/alpaca-go/alpaca/pkg/backend"
	_ "github.com/alpaca-go/alpaca/pkg/backend/cpu"  // registers "cpu"
	_ "github.com/alpaca-go/alpaca/pkg/backend/cuda" // registers "cuda" (loads libalpaca_cuda.so when opened)
)

// knownDevices are the --device names the trainer accepts; a name is
// usable when a backend registered itself under it (backend.Register).
var knownDevices = []string{"cpu", "cuda"}

func deviceKnown(name string) bool {
	for _, n := range deviceNames() {
		if n == name {
			return true
		}
	}
	return false
}

// deviceNames lists the known names plus whatever registered itself.
func deviceNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range append(append([]string(nil), knownDevices...), backend.Names()...) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// deviceAvailable says why --device name cannot run in this build (nil
// when a backend registered itself under name).
func deviceAvailable(name string) error {
	for _, n := range backend.Names() {
		if n == name {
			return nil
		}
	}
	_, err := openDevice(name, 0)
	return err
}

// openDevice opens the backend for --device through the registry.
func openDevice(name string, threads int) (backend.Backend, error) {
	be, err := backend.Open(name, backend.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("--device %s: %s", name, strings.TrimPrefix(err.Error(), name+": "))
	}
	return be, nil
}
