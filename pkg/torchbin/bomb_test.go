package torchbin

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// statePickle is a torch.save data.pkl (protocol 2) of {"w": FloatTensor
// of numel elements in storage "0"}, written opcode by opcode.
func statePickle(numel int32) []byte { return viewPickle(numel, numel, 1) }

// viewPickle is statePickle with the tensor a view of shape (size,) and
// stride (stride,) on the storage.
func viewPickle(numel, size, stride int32) []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte('X')
		binary.Write(&b, binary.LittleEndian, uint32(len(s)))
		b.WriteString(s)
	}
	bint := func(v int32) {
		b.WriteByte('J')
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.Write([]byte{0x80, 2})
	b.WriteString("ccollections\nOrderedDict\n)R")
	str("w")
	b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
	b.WriteString("(")
	str("storage")
	b.WriteString("ctorch\nFloatStorage\n")
	str("0")
	str("cpu")
	bint(numel)
	b.WriteString("tQ")
	bint(0)
	bint(size)
	b.WriteByte(0x85)
	bint(stride)
	b.WriteByte(0x85)
	b.WriteByte(0x89)
	b.WriteString("ccollections\nOrderedDict\n)R")
	b.WriteString("tRs.")
	return b.Bytes()
}

// zipOf writes a torch.save-like archive; storage is compressed with
// deflate when deflate is set.
func zipOf(t *testing.T, pkl, storage []byte, deflate bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for _, e := range []struct {
		name string
		data []byte
		comp bool
	}{{"archive/data.pkl", pkl, false}, {"archive/byteorder", []byte("little"), false}, {"archive/data/0", storage, deflate}} {
		m := zip.Store
		if e.comp {
			m = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A small file whose one deflated storage entry expands to hundreds of MB
// is refused before anything that size is allocated (it took 6.85 GB for
// a 3 GB entry); a legitimately compressed storage still reads.
func TestZipBombRefused(t *testing.T) {
	const numel = 64 << 20 // 256 MB of float32 zeros
	bomb := zipOf(t, statePickle(numel), make([]byte, 4*numel), true)
	if len(bomb) > 4<<20 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	p := filepath.Join(t.TempDir(), "pytorch_model.bin")
	os.WriteFile(p, bomb, 0o644)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := Open(p)
	runtime.ReadMemStats(&after)
	if err == nil {
		f.Close()
		t.Fatal("the zip bomb was accepted")
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Fatalf("allocated %d MB before refusing", d>>20)
	}

	// The same layout with real-looking data, compressed: accepted, and
	// the values come back.
	data := make([]byte, 4*1000)
	for i := range data {
		data[i] = byte(i*31 + i/7)
	}
	f2, err := Parse("ok", zipOf(t, statePickle(1000), data, true))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f2.Bytes("w")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("compressed storage: %v", err)
	}
	// Stored (torch.save's way): the same.
	f3, err := Parse("ok", zipOf(t, statePickle(1000), data, false))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f3.Bytes("w"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored storage: %v", err)
	}
	// A storage entry declaring more bytes than the pickle's storage: refused.
	if _, err := Parse("big", zipOf(t, statePickle(10), data, true)); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("oversized entry: %v", err)
	}
}

// A broadcast view (stride 0) of a tiny storage would be materialized by
// Bytes into an allocation its shape decides: refused at parse time.
func TestBroadcastViewRefused(t *testing.T) {
	data := make([]byte, 4)
	_, err := Parse("bcast", zipOf(t, viewPickle(1, 1<<30, 0), data, false))
	if err == nil || !strings.Contains(err.Error(), "larger than its 1-element storage") {
		t.Fatalf("got %v", err)
	}
}
