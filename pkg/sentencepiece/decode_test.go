package sentencepiece

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// refDecode decodes id lists with the reference library (spm_ids.py --decode).
func refDecode(t testing.TB, model string, seqs [][]int32) []string {
	t.Helper()
	var in bytes.Buffer
	for _, ids := range seqs {
		if ids == nil {
			ids = []int32{}
		}
		b, _ := json.Marshal(map[string]any{"ids": ids})
		in.Write(b)
		in.WriteByte('\n')
	}
	cmd := exec.Command("/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "fixtures", "spm_ids.py"), model, "--decode")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference decoder: %v", err)
	}
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var f fixture
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		res = append(res, f.Text)
	}
	return res
}

// randomIDs makes id sequences that stress decoding: control and unknown
// ids, byte pieces forming valid and broken UTF-8, pieces with ▁.
func randomIDs(m *Model, n int, seed int64) [][]int32 {
	r := rand.New(rand.NewSource(seed))
	var out [][]int32
	for i := 0; i < n; i++ {
		k := r.Intn(12)
		var ids []int32
		for j := 0; j < k; j++ {
			switch r.Intn(4) {
			case 0:
				ids = append(ids, int32(r.Intn(len(m.Pieces))))
			case 1:
				ids = append(ids, int32(r.Intn(min(300, len(m.Pieces)))))
			case 2:
				if m.ByteFallback() {
					for _, c := range []byte("é中😀")[r.Intn(3):] {
						ids = append(ids, m.byteIDs[c])
					}
				}
			case 3:
				ids = append(ids, m.PieceToID(SpaceSymbol), m.PieceToID(SpaceSymbol+SpaceSymbol))
			}
		}
		out = append(out, ids)
	}
	return out
}

func TestDecodeMatchesReference(t *testing.T) {
	m, path := llamaModel(t)
	if !havePySPM() {
		t.Skip("python3-sentencepiece not installed")
	}
	seqs := randomIDs(m, 2000, 7)
	// And the encodings of the corpus.
	for _, f := range readFixtures(t, filepath.Join("testdata", "llama_ids.jsonl")) {
		seqs = append(seqs, f.IDs)
	}
	want := refDecode(t, path, seqs)
	bad := 0
	for i, ids := range seqs {
		got, err := m.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		if got != want[i] {
			bad++
			if bad < 5 {
				t.Errorf("decode %v (%s):\n got %q\nwant %q", ids, pieces(m, ids), got, want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d decodes differ", bad, len(seqs))
	}
}

func TestDecodeErrors(t *testing.T) {
	m, _ := llamaModel(t)
	if _, err := m.Decode([]int32{1, 32000}); err == nil {
		t.Error("id 32000 accepted")
	}
	if _, err := m.Decode([]int32{-1}); err == nil {
		t.Error("id -1 accepted")
	}
}

// FuzzRoundTrip: for any valid UTF-8, decode(encode(s)) gives s back with
// the LLaMA settings (identity normalizer, byte fallback); the one loss is
// the character ▁ (U+2581) itself, which the encoder cannot tell from an
// escaped space, so it comes back as a space (as with spm_decode).
func FuzzRoundTrip(f *testing.F) {
	m, _ := llamaModel(f)
	for _, fx := range readFixtures(f, filepath.Join("testdata", "corpus.jsonl")) {
		f.Add(fx.Text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := m.Encode(s)
		got, err := m.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(s, SpaceSymbol, " "); got != want {
			t.Fatalf("round trip of %q gave %q (ids %v)", s, got, ids)
		}
	})
}

// FuzzRoundTripTrained is FuzzRoundTrip with a small model trained by our
// trainer (needs nothing outside the repo), and checks that encoding never
// produces an id outside the vocabulary.
func FuzzRoundTripTrained(f *testing.F) {
	m, err := Parse(trainModel(f, 700, TrainOptions{SplitDigits: true}, trainingText(f, 500)))
	if err != nil {
		f.Fatal(err)
	}
	for _, fx := range readFixtures(f, filepath.Join("testdata", "corpus.jsonl")) {
		f.Add(fx.Text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := m.Encode(s)
		for _, id := range ids {
			if id < 0 || int(id) >= m.VocabSize() {
				t.Fatalf("id %d outside vocab", id)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		got, err := m.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(s, SpaceSymbol, " "); got != want {
			t.Fatalf("round trip of %q gave %q (ids %v)", s, got, ids)
		}
	})
}

// FuzzParse: any bytes as a .model give a model or an error, never a panic.
func FuzzParse(f *testing.F) {
	good := trainModel(f, 600, TrainOptions{}, trainingText(f, 50))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x0a, 0x05, 0x0a, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		ids := m.Encode("Hello wörld 中文 😀  x")
		if _, err := m.Decode(ids); err != nil && err != ErrDenormalizer {
			t.Fatal(err)
		}
	})
}
