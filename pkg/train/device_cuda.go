//go:build cuda

package train

import "errors"

// cudaAvailable reports why --device cuda cannot run in this build.
func cudaAvailable() error {
	return errors.New("--device cuda: the CUDA backend is not part of this build yet; use --device cpu")
}
