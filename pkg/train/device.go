//go:build !cuda

package train

import "errors"

// cudaAvailable reports why --device cuda cannot run in this build.
func cudaAvailable() error {
	return errors.New("--device cuda: this trainer was built without CUDA support (rebuild with `go build -tags cuda` on a machine with the CUDA toolkit); use --device cpu")
}
