//go:build !cgo || !linux

package cuda

import (
	"errors"
	"runtime"
)

// cgoLoaderAvailable: this build cannot dlopen (no cgo, or not Linux).
const cgoLoaderAvailable = false

func loadLib(path string) (api, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("the CUDA backend loader is Linux-only")
	}
	return nil, errors.New("this binary was built without cgo, so it cannot load libalpaca_cuda.so (built by make cuda); rebuild it with CGO_ENABLED=1 (the default when a C compiler is present: make build)")
}
