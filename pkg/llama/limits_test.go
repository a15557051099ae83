package llama

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Hostile config.json values are refused by ParseConfig with a message
// naming the field, before anything is allocated from them.
func TestConfigLimits(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	cases := []struct{ extra, want string }{
		{`"vocab_size":2147483648`, "vocab_size 2147483648 is above the limit"},
		{`"vocab_size":9223372036854775807`, "vocab_size"},
		{`"num_hidden_layers":1000000000`, "num_hidden_layers 1000000000 is above the limit"},
		{`"hidden_size":1048576,"num_attention_heads":4`, "hidden_size 1048576"},
		{`"intermediate_size":1073741824`, "intermediate_size"},
		{`"num_attention_heads":65536,"hidden_size":65536`, "num_attention_heads"},
		{`"max_position_embeddings":1000000000000`, "max_position_embeddings"},
		// Each dimension within its limit, together far too many.
		{`"hidden_size":65536,"intermediate_size":262144,"num_hidden_layers":1024,"num_attention_heads":64,"vocab_size":4194304`, "parameters is above the limit"},
	}
	for _, c := range cases {
		// Later keys win in encoding/json.
		_, err := ParseConfig([]byte("{" + base + "," + c.extra + "}"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.extra, err, c.want)
		}
	}
	if _, err := ParseConfig([]byte("{" + base + "}")); err != nil {
		t.Fatalf("the base config: %v", err)
	}
	// LLaMA-65B's shape is within the limits.
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 8192, 22016, 80, 64, 64
	if err := c.Validate(); err != nil {
		t.Fatalf("65B: %v", err)
	}
	if n := c.NumParams(); n < 65e9 || n > 66e9 {
		t.Fatalf("65B NumParams %d", n)
	}
}

// Tensors and NumParams describe exactly what New allocates.
func TestTensorsMatchModel(t *testing.T) {
	for _, tie := range []bool{false, true} {
		c, _ := Preset("tiny", 50)
		c.NumKeyValueHeads = 2
		c.TieWordEmbeddings = tie
		m := New(c, 1)
		var got []Tensor
		for _, p := range m.Params() {
			got = append(got, Tensor{p.Name, p.Shape})
		}
		if !reflect.DeepEqual(got, c.Tensors()) {
			t.Fatalf("tie %v: Tensors() differs from the model's params", tie)
		}
		if int64(m.NumParams()) != c.NumParams() {
			t.Fatalf("tie %v: NumParams %d, model %d", tie, c.NumParams(), m.NumParams())
		}
	}
}

// A config.json that claims far more than the weights hold is refused
// from the header, before the model is allocated.
func TestLoadChecksHeaderBeforeAllocating(t *testing.T) {
	dir := t.TempDir()
	c, _ := Preset("tiny", 50)
	if err := New(c, 1).Save(dir, "float32"); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	json.Unmarshal(b, &m)
	// ~6 GB of fp32 weights (12 GB with gradients) if it were allocated.
	m["num_hidden_layers"], m["hidden_size"], m["intermediate_size"], m["num_attention_heads"], m["num_key_value_heads"] = 24, 4096, 11008, 32, 32
	b, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Load(dir)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "config.json implies") {
		t.Fatalf("got %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Fatalf("Load allocated %d MB before refusing", d>>20)
	}
}

// A model larger than the machine's memory is a message, not a crash.
func TestCheckMemory(t *testing.T) {
	if memTotal() == 0 {
		t.Skip("no /proc/meminfo")
	}
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 16384, 65536, 8, 128, 128
	if err := c.Validate(); err != nil {
		t.Fatalf("within the limits: %v", err)
	}
	if c.MemoryBytes(true) <= memTotal() {
		t.Skipf("this machine has %d GB", memTotal()>>30)
	}
	if err := c.CheckMemory(true); err == nil || !strings.Contains(err.Error(), "this machine has") {
		t.Fatalf("got %v", err)
	}
	small, _ := Preset("tiny", 50)
	if err := small.CheckMemory(true); err != nil {
		t.Fatal(err)
	}
}
