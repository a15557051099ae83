package promptfmt

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchInput is ../shared/data/alpaca_data.json when present, else 20,000
// generated Alpaca-like records (40% with input) as a JSON array.
func benchInput(b *testing.B) []byte {
	if data, err := os.ReadFile(filepath.Join(repoRoot(), "..", "shared", "data", "alpaca_data.json")); err == nil {
		return data
	}
	return generate(20000)
}

// generate makes n Alpaca-like records as a JSON array.
func generate(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i := 0; i < n; i++ {
		if i > 0 {
			buf.WriteString(",\n")
		}
		input := ""
		if i%5 < 2 {
			input = fmt.Sprintf("The input number %d, with \"quotes\", a tab\\t and caf\u00e9.", i)
		}
		fmt.Fprintf(&buf, "    {\n        \"instruction\": \"Write a short answer to question %d about the world.\",\n        \"input\": %q,\n        \"output\": \"Answer %d: the world is large.\\nIt has many parts, some of which are described at length here so that the output is about as long as Alpaca's median output.\"\n    }", i, input, i)
	}
	buf.WriteString("\n]\n")
	return buf.Bytes()
}

func benchMain(b *testing.B, args ...string) {
	data := benchInput(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code := Main(append([]string{"--quiet"}, args...), bytes.NewReader(data), io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

func BenchmarkFormat(b *testing.B)   { benchMain(b, "-j", "1") }
func BenchmarkFormatJ2(b *testing.B) { benchMain(b, "-j", "2") }
