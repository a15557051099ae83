package llama

import "testing"

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"hidden_size":64,"intermediate_size":100,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`))
	f.Add([]byte(`{"num_key_value_heads":null,"rope_scaling":null}`))
	f.Add([]byte(`{"vocab_size":2147483648}`))
	f.Add([]byte(`{"num_hidden_layers":1000000000,"hidden_size":65536}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.Validate() != nil {
			t.Fatal("ParseConfig returned an invalid config")
		}
		// Nothing it accepts can size a runaway allocation.
		if n := c.NumParams(); n <= 0 || n > MaxParams || c.VocabSize > MaxVocab || c.NumHiddenLayers > MaxLayers {
			t.Fatalf("accepted %d params (layers %d, vocab %d)", n, c.NumHiddenLayers, c.VocabSize)
		}
		b, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(b); err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b)
		}
	})
}
