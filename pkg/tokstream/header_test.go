package tokstream

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"runtime"
	"strings"
	"testing"
)

// Corrupt special ids (or a vocabulary that does not fit the id width) in
// a stream's header are format errors, at the header.
func TestBadHeaderIDs(t *testing.T) {
	good := encode(t, Header{VocabSize: 100, BOS: 1, EOS: 2, Pad: -1}, sample(rand.New(rand.NewSource(2)), 100, 3))
	patch := func(off int, v uint32) []byte {
		b := append([]byte{}, good...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"bos past vocab", patch(16, 100), "BOS id 100"},
		{"eos negative", patch(20, uint32(0xfffffff0)), "EOS id -16"},
		{"pad huge", patch(24, 1<<30), "PAD id 1073741824"},
		{"vocab zero", patch(12, 0), "vocab size 0"},
		{"vocab too big for uint16", patch(12, 1<<17), "does not fit"},
	}
	for _, c := range cases {
		_, _, err := decode(c.b)
		var fe *FormatError
		if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := NewWriter(nil, Header{VocabSize: 10, BOS: 10, EOS: -1, Pad: -1}); err == nil {
		t.Error("the writer took BOS 10 in a vocabulary of 10")
	}
	if _, _, err := decode(good); err != nil {
		t.Fatal(err)
	}
}

// A record length near MaxTokens in a small file is a truncation error
// without a gigabyte allocation first.
func TestHugeLengthSmallFile(t *testing.T) {
	good := encode(t, Header{VocabSize: 100, BOS: 1, EOS: 2, Pad: -1}, nil)
	hdrLen := len(good) - 20 // header, then the end marker (4 + 16 bytes)
	b := append([]byte{}, good[:hdrLen]...)
	b = binary.LittleEndian.AppendUint32(b, MaxTokens-1)
	b = append(b, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := decode(b)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Fatalf("allocated %d MB for a %d-byte stream", d>>20, len(b))
	}
}
