package weightdiff

import (
	"bytes"
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/safetensors"
	"github.com/alpaca-go/alpaca/pkg/tokstream"
	"github.com/alpaca-go/alpaca/pkg/train"
)

func trainer(t *testing.T, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := train.Main(args, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("trainer %v: exit %d: %s", args, code, errb.String())
	}
}

// The Alpaca flow on models made by `trainer init` and fine-tuned by
// `trainer`: raw = the base model, tuned = base + [PAD] (trainer init
// --add-pad-token), then trained a few steps.
func TestTrainerModels(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	tmp := t.TempDir()
	base, padded, tuned := filepath.Join(tmp, "base"), filepath.Join(tmp, "padded"), filepath.Join(tmp, "tuned")
	trainer(t, "init", "--preset", "tiny", "--out", base, "--seed", "1", "--quiet")
	trainer(t, "init", "--model", base, "--add-pad-token", "--out", padded, "--quiet")
	m, err := safetensors.OpenDir(padded)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := m.Info("model.embed_tokens.weight")
	m.Close()
	vocab := int(ti.Shape[0])
	// a few synthetic examples
	var buf bytes.Buffer
	w, err := tokstream.NewWriter(&buf, tokstream.Header{VocabSize: vocab, BOS: 1, EOS: 2, Pad: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 16; i++ {
		ex := tokstream.Example{IDs: []int32{1}, Mask: []bool{false}}
		for j := 0; j < 8; j++ {
			ex.IDs = append(ex.IDs, int32(3+r.Intn(vocab-3)))
			ex.Mask = append(ex.Mask, j > 3)
		}
		w.Write(ex)
	}
	w.Close()
	data := filepath.Join(tmp, "tokens.bin")
	os.WriteFile(data, buf.Bytes(), 0o644)
	trainer(t, "--model", padded, "--data", data, "--out", tuned, "--max-steps", "3", "--batch-size", "4",
		"--seq-len", "64", "--lr", "1e-3", "--warmup-steps", "1", "--seed", "1", "--quiet")

	ctx := context.Background()
	// trainer's [PAD] resize and ours: the diff base -> padded is zero except
	// possibly for the last bit of the pad row (ours reproduces torch's float32
	// cascade mean; see TestMakeMatchesTorch)
	d0 := filepath.Join(tmp, "d0")
	if _, err := Make(ctx, MakeOptions{Options: small, Raw: base, Tuned: padded, Out: d0}); err != nil {
		t.Fatal(err)
	}
	dm, _ := safetensors.OpenDir(d0)
	cols := int(ti.Shape[1])
	for _, n := range dm.Names() {
		v, _ := dm.Float32(n)
		padFrom := len(v)
		if isEmbedding(n) {
			padFrom = len(v) - cols
		}
		off := 0
		for i, x := range v {
			if x != 0 && (i < padFrom || math.Abs(float64(x)) > 1e-9) {
				t.Errorf("%s[%d]: trainer's padded model differs from our pad resize by %v", n, i, x)
				break
			}
			if x != 0 {
				off++
			}
		}
		if off > 0 {
			t.Logf("%s: %d of %d pad-row columns differ in the last bit from trainer init --add-pad-token", n, off, cols)
		}
	}
	dm.Close()
	// fine-tuned: both modes round-trip and verify
	want, _ := readModel(t, tuned)
	for _, mode := range []string{"diff", "xor"} {
		diff, rec := filepath.Join(tmp, mode), filepath.Join(tmp, mode+"-rec")
		s, err := Make(ctx, MakeOptions{Options: small, Raw: base, Tuned: tuned, Out: diff, Mode: mode})
		if err != nil {
			t.Fatal(mode, err)
		}
		rs, err := Recover(ctx, RecoverOptions{Options: small, Raw: base, Diff: diff, Out: rec})
		if err != nil {
			t.Fatal(mode, err)
		}
		if rs.Checked != len(want) {
			t.Errorf("%s: %d of %d tensors checked", mode, rs.Checked, len(want))
		}
		got, _ := readModel(t, rec)
		var differ int
		for n := range want {
			if !bytes.Equal(got[n], want[n]) {
				differ++
			}
		}
		if mode == "xor" && differ != 0 {
			t.Errorf("xor: %d tensors differ from the tuned model", differ)
		}
		if mode == "diff" && s.Inexact == 0 && differ != 0 {
			t.Errorf("diff: %d tensors differ though make predicted none", differ)
		}
		if _, err := Verify(ctx, VerifyOptions{Options: small, Model: tuned, Manifest: mustManifest(t, diff)}); err != nil {
			t.Error(mode, err)
		}
	}
}
