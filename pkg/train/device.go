//go:build !cuda

package train

import "errors"

// cudaAvailable reports why --device cuda cannot run in this build.
func cudaAvailable() error {
	return errors.New("--device cuda: this trainer was built without CUDA support (the CUDA backend, build tag `cuda`, is not written yet); use --device cpu")
}
