package prompt

import "testing"

func BenchmarkAppendJSON(b *testing.B) {
	t, _ := Builtin("alpaca")
	ins := []byte(`Rewrite the following sentence so that it is in the passive voice and keeps its meaning.`)
	in := []byte(`The committee approved the new budget after a long debate.\nIt was late.`)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(ins) + len(in)))
	for i := 0; i < b.N; i++ {
		buf = t.AppendJSON(buf[:0], ins, in)
	}
}

func BenchmarkExtract(b *testing.B) {
	t, _ := Builtin("alpaca")
	text := t.Render("Rewrite the following sentence in the passive voice.", "The committee approved the budget.") +
		"The budget was approved by the committee.\n"
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		if _, ok := t.Extract(text); !ok {
			b.Fatal("no split")
		}
	}
}
