package weightdiff

import (
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// An xor frame that would expand far beyond its chunk is refused from its
// header, before decoding; an honest frame decodes.
func TestDecodeFrameBounded(t *testing.T) {
	bomb := zenc.EncodeAll(make([]byte, 256<<20), nil)
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb frame of %d bytes", len(bomb))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decodeFrame(bomb, 4096)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "want 4096") {
		t.Fatalf("got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Fatalf("allocated %d MB", d>>20)
	}
	// A frame without a declared size (a streaming encoder's) is read up
	// to want bytes only.
	var buf strings.Builder
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(make([]byte, 64<<20))
	zw.Close()
	runtime.ReadMemStats(&before)
	_, err = decodeFrame([]byte(buf.String()), 4096)
	runtime.ReadMemStats(&after)
	if err == nil || !(strings.Contains(err.Error(), "more than 4096") || strings.Contains(err.Error(), "window size exceeded")) {
		t.Fatalf("no content size: %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Fatalf("no content size: allocated %d MB", d>>20)
	}
	tiny := zenc.EncodeAll(make([]byte, 40), nil) // no content size in the header
	if x, err := decodeFrame(tiny, 40); err != nil || len(x) != 40 {
		t.Fatalf("tiny: %d %v", len(x), err)
	}
	good := zenc.EncodeAll([]byte("0123456789abcdef"), nil)
	if x, err := decodeFrame(good, 16); err != nil || string(x) != "0123456789abcdef" {
		t.Fatalf("%q %v", x, err)
	}
}
