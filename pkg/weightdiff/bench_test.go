package weightdiff

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
)

// BenchmarkRecover recovers a ~36 MB float32 model (diff and xor modes);
// throughput is reported in recovered bytes per second.
func BenchmarkRecover(b *testing.B) {
	tmp := b.TempDir()
	raw, tuned := filepath.Join(tmp, "raw"), filepath.Join(tmp, "tuned")
	tinyLlama(b, raw, 4000, 256, 688, safetensors.F32, 2, 0)
	tinyLlama(b, tuned, 4001, 256, 688, safetensors.F32, 3, 1e-4)
	for _, mode := range []string{"diff", "xor"} {
		diff := filepath.Join(tmp, "diff-"+mode)
		opt := Options{Workers: 2, ShardBytes: 1 << 30}
		if _, err := Make(context.Background(), MakeOptions{Options: opt, Raw: raw, Tuned: tuned, Out: diff, Mode: mode}); err != nil {
			b.Fatal(err)
		}
		b.Run(mode, func(b *testing.B) {
			var size int64
			for i := 0; i < b.N; i++ {
				out := filepath.Join(tmp, "rec")
				s, err := Recover(context.Background(), RecoverOptions{Options: opt, Raw: raw, Diff: diff, Out: out})
				if err != nil {
					b.Fatal(err)
				}
				size = s.Bytes
				os.RemoveAll(out)
			}
			b.SetBytes(size)
		})
	}
}
