package train

import (
	"encoding/json"
	"testing"
)

// FuzzParseState: any trainer_state.json bytes either fail with an error
// or give a state whose counters are in range (the resume path indexes
// with them).
func FuzzParseState(f *testing.F) {
	s := &State{Format: StateFormat, Version: StateVersion, Step: 2, TotalSteps: 4, Config: DefaultConfig()}
	s.Optimizer.File, s.Optimizer.Step = OptimizerFile, 2
	b, _ := json.Marshal(s)
	f.Add(b)
	f.Add([]byte(`{"format":"alpaca-go-trainer-state","version":1,"step":1000000000000,"total_steps":4}`))
	f.Add([]byte(`{"format":"alpaca-go-trainer-state","version":1,"batch_in_epoch":-1,"optimizer":{"file":"../x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		if st.Step < 0 || st.Step > st.TotalSteps || st.BatchIdx < 0 || st.BatchIdx > st.Step || st.Epoch < 0 || st.Epoch > st.Step ||
			st.Threads < 0 || st.Threads > maxThreads || (st.Optimizer.File != "" && !plainName(st.Optimizer.File)) {
			t.Fatalf("accepted %+v", st)
		}
		if st.Config.Validate() != nil {
			t.Fatal("accepted an invalid config")
		}
	})
}
