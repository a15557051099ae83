package llama

import "testing"

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"hidden_size":64,"intermediate_size":100,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`))
	f.Add([]byte(`{"num_key_value_heads":null,"rope_scaling":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.Validate() != nil {
			t.Fatal("ParseConfig returned an invalid config")
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
