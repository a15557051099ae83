package backend

import (
	"strings"
	"testing"
)

func TestBufferViews(t *testing.T) {
	b := NewBuffer("storage", BF16, 3, 10)
	v := b.Slice(2, 7).Slice(1, 4)
	if v.Offset() != 6 || v.Len() != 3 || v.DType() != BF16 || v.Storage() != "storage" || v.IsNil() {
		t.Fatalf("view: off %d len %d dtype %v", v.Offset(), v.Len(), v.DType())
	}
	if !(Buffer{}).IsNil() {
		t.Error("zero Buffer is not nil")
	}
	for _, bad := range [][2]int{{-1, 2}, {3, 2}, {0, 11}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Slice(%d, %d) of 10 did not panic", bad[0], bad[1])
				}
			}()
			b.Slice(bad[0], bad[1])
		}()
	}
}

func TestDTypes(t *testing.T) {
	for dt, want := range map[DType][2]any{F32: {4, "f32"}, BF16: {2, "bf16"}, F16: {2, "f16"}, I32: {4, "i32"}} {
		if dt.Size() != want[0] || dt.String() != want[1] {
			t.Errorf("%v: size %d", dt, dt.Size())
		}
	}
	if !BF16.IsFloat() || I32.IsFloat() || DType(0).Size() != 0 {
		t.Error("IsFloat/Size of unknown")
	}
}

func TestRegistry(t *testing.T) {
	Register("test-backend", func(Options) (Backend, error) { return nil, nil })
	if _, err := Open("test-backend", Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := Open("cuda", Options{})
	if err == nil || !strings.Contains(err.Error(), `no backend registered for "cuda"`) || !strings.Contains(err.Error(), "test-backend") {
		t.Errorf("cuda: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	Register("test-backend", nil)
}
