package sentencepiece

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/alpaca-go/alpaca/pkg/jsonl"
)

// Alpaca's train.py prompt templates.
const (
	promptInput   = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:"
	promptNoInput = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Response:"
)

// TestAlpacaData encodes every Alpaca example as train.py does (the full
// prompt + output), and the instruction, input and output of every tenth
// alone, and compares with the reference
// library, run at test time (python3-sentencepiece, the library behind
// spm_encode). Zero differing ids.
func TestAlpacaData(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 52k-example comparison")
	}
	m, model := llamaModel(t)
	data := filepath.Join(repoRoot(t), "..", "shared", "data", "alpaca_data.json")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("%s not present", data)
	}
	if !havePySPM() {
		t.Skip("python3-sentencepiece (/usr/bin/python3 -c 'import sentencepiece') not installed")
	}
	r, err := jsonl.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var texts []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ins, _, _ := jsonl.GetString(rec.Raw, "instruction")
		in, _, _ := jsonl.GetString(rec.Raw, "input")
		out, _, _ := jsonl.GetString(rec.Raw, "output")
		var prompt string
		if in != "" {
			prompt = sprintf(promptInput, ins, in)
		} else {
			prompt = sprintf(promptNoInput, ins)
		}
		texts = append(texts, prompt+out)
		if rec.Num%10 == 0 {
			// Texts on their own too (a dummy prefix before the first word).
			texts = append(texts, ins, in, out)
		}
	}
	if len(texts) < 52000 {
		t.Fatalf("read only %d texts", len(texts))
	}
	compareIDs(t, m, texts, refEncode(t, model, texts))
}
