package torchbin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// The restricted pickle machine. It understands the opcodes torch.save and
// Python's pickle emit for a state dict (protocols 2 to 5) and builds plain
// Go values: int64, float64, string, []byte, bool, nil, *Tuple, *List,
// *Dict, *Global (a resolved, allowed name), *StorageRef and *TensorRef.
// Nothing is ever executed: GLOBAL only resolves names from a fixed allow
// list, and REDUCE/BUILD only apply the few callables a state dict needs.

// Tuple is a pickled tuple.
type Tuple struct{ Items []any }

// List is a pickled list.
type List struct{ Items []any }

// Dict is a pickled dict or OrderedDict; keys keep insertion order.
type Dict struct {
	Keys   []any
	Values []any
	index  map[any]int
}

func newDict() *Dict { return &Dict{index: map[any]int{}} }

// Set inserts or replaces key (only hashable scalars are allowed as keys).
func (d *Dict) Set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, nil, float64:
	default:
		return fmt.Errorf("unsupported dict key of type %s", typeName(k))
	}
	if i, ok := d.index[k]; ok {
		d.Values[i] = v
		return nil
	}
	d.index[k] = len(d.Keys)
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
	return nil
}

// Get looks up a key.
func (d *Dict) Get(k any) (any, bool) {
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.Values[i], true
}

// Global is an allowed global name ("module.name").
type Global struct{ Name string }

// StorageRef is a persistent-id storage reference: ('storage', type, key,
// location, numel).
type StorageRef struct {
	DType    string // safetensors dtype name
	Key      string
	Location string
	NumElems int64
}

// TensorRef is a rebuilt tensor: a strided view of a storage.
type TensorRef struct {
	Storage *StorageRef
	Offset  int64 // in elements
	Shape   []int64
	Stride  []int64
}

// storage types and the dtype of their elements.
var storageTypes = map[string]string{
	"torch.FloatStorage":    "F32",
	"torch.DoubleStorage":   "F64",
	"torch.HalfStorage":     "F16",
	"torch.BFloat16Storage": "BF16",
	"torch.LongStorage":     "I64",
	"torch.IntStorage":      "I32",
	"torch.ShortStorage":    "I16",
	"torch.CharStorage":     "I8",
	"torch.ByteStorage":     "U8",
	"torch.BoolStorage":     "BOOL",
}

// callables REDUCE may apply.
var allowedCallables = map[string]bool{
	"collections.OrderedDict":                    true,
	"torch._utils._rebuild_tensor_v2":            true,
	"torch._utils._rebuild_parameter":            true,
	"torch._utils._rebuild_parameter_with_state": true,
}

// RefusedGlobalError reports a global outside the allow list.
type RefusedGlobalError struct {
	Name   string
	Offset int
}

func (e *RefusedGlobalError) Error() string {
	return fmt.Sprintf("refusing pickle global %q at byte %d: only the globals of a plain state dict are allowed (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage); this file may try to run code", e.Name, e.Offset)
}

func allowedGlobal(name string) bool {
	if _, ok := storageTypes[name]; ok {
		return true
	}
	return allowedCallables[name]
}

type mark struct{}

// Limits of the machine, so that hostile input cannot exhaust memory.
const (
	maxStack = 1 << 20
	maxMemo  = 1 << 22
)

type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[int64]any
}

// Unpickle runs the restricted machine over a whole pickle and returns the
// top-level object.
func Unpickle(data []byte) (any, error) {
	v, _, err := unpickleAt(data, 0)
	return v, err
}

// unpickleAt runs one pickle starting at data[pos:] and returns the offset
// just after its STOP (the legacy format is several pickles in a row).
func unpickleAt(data []byte, pos int) (any, int, error) {
	u := &unpickler{data: data, pos: pos, memo: map[int64]any{}}
	v, err := u.run()
	if err != nil {
		return nil, 0, fmt.Errorf("pickle: %w", err)
	}
	return v, u.pos, nil
}

func (u *unpickler) errf(start int, format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", start, fmt.Sprintf(format, args...))
}

func (u *unpickler) take(n int) ([]byte, error) {
	if n < 0 || u.pos+n > len(u.data) || u.pos+n < u.pos {
		return nil, errors.New("truncated pickle")
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) line() (string, error) {
	for i := u.pos; i < len(u.data); i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	return "", errors.New("truncated pickle (unterminated line)")
}

func (u *unpickler) push(v any) error {
	if len(u.stack) >= maxStack {
		return errors.New("pickle stack too deep")
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && u.marks[len(u.marks)-1] == n) {
		return nil, errors.New("pop from an empty stack")
	}
	v := u.stack[n-1]
	u.stack = u.stack[:n-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && u.marks[len(u.marks)-1] == n) {
		return nil, errors.New("empty stack")
	}
	return u.stack[n-1], nil
}

// popMark returns the items above the last MARK and removes them.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) memoPut(i int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("negative memo index %d", i)
	}
	if _, ok := u.memo[i]; !ok && len(u.memo) >= maxMemo {
		return errors.New("too many memo entries")
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) memoGet(i int64) error {
	v, ok := u.memo[i]
	if !ok {
		return fmt.Errorf("memo index %d was never stored", i)
	}
	return u.push(v)
}

func (u *unpickler) run() (any, error) {
	for {
		start := u.pos
		if u.pos >= len(u.data) {
			return nil, errors.New("truncated pickle (no STOP)")
		}
		op := u.data[u.pos]
		u.pos++
		if err := u.step(op, start); err != nil {
			if err == errStop {
				if len(u.stack) != 1 || len(u.marks) != 0 {
					return nil, u.errf(start, "STOP with %d objects on the stack", len(u.stack))
				}
				return u.stack[0], nil
			}
			var rg *RefusedGlobalError
			if errors.As(err, &rg) {
				return nil, err
			}
			return nil, u.errf(start, "opcode 0x%02x: %v", op, err)
		}
	}
}

var errStop = errors.New("stop")

func (u *unpickler) step(op byte, start int) error {
	switch op {
	case 0x80: // PROTO
		b, err := u.take(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return fmt.Errorf("unsupported pickle protocol %d", b[0])
		}
	case 0x95: // FRAME (framing is advisory; the data is read in one piece)
		_, err := u.take(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		if len(u.marks) >= maxStack {
			return errors.New("too many MARKs")
		}
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		if len(u.marks) > 0 && u.marks[len(u.marks)-1] == len(u.stack) {
			u.marks = u.marks[:len(u.marks)-1]
			return nil
		}
		_, err := u.pop()
		return err
	case '1': // POP_MARK
		_, err := u.popMark()
		return err
	case '2': // DUP
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.push(v)
	case 'N':
		return u.push(nil)
	case 0x88:
		return u.push(true)
	case 0x89:
		return u.push(false)
	case 'J': // BININT
		b, err := u.take(4)
		if err != nil {
			return err
		}
		return u.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case 'K': // BININT1
		b, err := u.take(1)
		if err != nil {
			return err
		}
		return u.push(int64(b[0]))
	case 'M': // BININT2
		b, err := u.take(2)
		if err != nil {
			return err
		}
		return u.push(int64(binary.LittleEndian.Uint16(b)))
	case 0x8a, 0x8b: // LONG1, LONG4
		var n int
		if op == 0x8a {
			b, err := u.take(1)
			if err != nil {
				return err
			}
			n = int(b[0])
		} else {
			b, err := u.take(4)
			if err != nil {
				return err
			}
			n = int(int32(binary.LittleEndian.Uint32(b)))
		}
		b, err := u.take(n)
		if err != nil {
			return err
		}
		return u.push(decodeLong(b))
	case 'G': // BINFLOAT (big-endian)
		b, err := u.take(8)
		if err != nil {
			return err
		}
		return u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes
		var n uint64
		switch op {
		case 0x8c, 'U', 'C':
			b, err := u.take(1)
			if err != nil {
				return err
			}
			n = uint64(b[0])
		case 'X', 'T', 'B':
			b, err := u.take(4)
			if err != nil {
				return err
			}
			n = uint64(binary.LittleEndian.Uint32(b))
		default:
			b, err := u.take(8)
			if err != nil {
				return err
			}
			n = binary.LittleEndian.Uint64(b)
		}
		if n > uint64(len(u.data)) {
			return errors.New("truncated pickle (string longer than the data)")
		}
		b, err := u.take(int(n))
		if err != nil {
			return err
		}
		switch op {
		case 'B', 'C', 0x8e:
			return u.push(append([]byte(nil), b...))
		}
		return u.push(string(b))
	case '}': // EMPTY_DICT
		return u.push(newDict())
	case ']': // EMPTY_LIST
		return u.push(&List{})
	case ')': // EMPTY_TUPLE
		return u.push(&Tuple{})
	case 't': // TUPLE
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&Tuple{Items: items})
	case 0x85, 0x86, 0x87: // TUPLE1..3
		n := int(op-0x85) + 1
		items := make([]any, n)
		for i := n - 1; i >= 0; i-- {
			v, err := u.pop()
			if err != nil {
				return err
			}
			items[i] = v
		}
		return u.push(&Tuple{Items: items})
	case 'l': // LIST
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&List{Items: items})
	case 'd': // DICT
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := newDict()
		if err := setPairs(d, items); err != nil {
			return err
		}
		return u.push(d)
	case 'a': // APPEND
		v, err := u.pop()
		if err != nil {
			return err
		}
		l, err := u.top()
		if err != nil {
			return err
		}
		ll, ok := l.(*List)
		if !ok {
			return fmt.Errorf("APPEND to a %s", typeName(l))
		}
		ll.Items = append(ll.Items, v)
	case 'e': // APPENDS
		items, err := u.popMark()
		if err != nil {
			return err
		}
		l, err := u.top()
		if err != nil {
			return err
		}
		ll, ok := l.(*List)
		if !ok {
			return fmt.Errorf("APPENDS to a %s", typeName(l))
		}
		ll.Items = append(ll.Items, items...)
	case 's': // SETITEM
		v, err := u.pop()
		if err != nil {
			return err
		}
		k, err := u.pop()
		if err != nil {
			return err
		}
		d, err := u.top()
		if err != nil {
			return err
		}
		dd, ok := d.(*Dict)
		if !ok {
			return fmt.Errorf("SETITEM on a %s", typeName(d))
		}
		return dd.Set(k, v)
	case 'u': // SETITEMS
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d, err := u.top()
		if err != nil {
			return err
		}
		dd, ok := d.(*Dict)
		if !ok {
			return fmt.Errorf("SETITEMS on a %s", typeName(d))
		}
		return setPairs(dd, items)
	case 'q': // BINPUT
		b, err := u.take(1)
		if err != nil {
			return err
		}
		return u.memoPut(int64(b[0]))
	case 'r': // LONG_BINPUT
		b, err := u.take(4)
		if err != nil {
			return err
		}
		return u.memoPut(int64(binary.LittleEndian.Uint32(b)))
	case 0x94: // MEMOIZE
		return u.memoPut(int64(len(u.memo)))
	case 'h': // BINGET
		b, err := u.take(1)
		if err != nil {
			return err
		}
		return u.memoGet(int64(b[0]))
	case 'j': // LONG_BINGET
		b, err := u.take(4)
		if err != nil {
			return err
		}
		return u.memoGet(int64(binary.LittleEndian.Uint32(b)))
	case 'c': // GLOBAL "module\nname\n"
		mod, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		return u.global(mod, name, start)
	case 0x93: // STACK_GLOBAL
		name, err := u.pop()
		if err != nil {
			return err
		}
		mod, err := u.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL needs two strings")
		}
		return u.global(ms, ns, start)
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return err
		}
		s, err := persistentStorage(pid)
		if err != nil {
			return err
		}
		return u.push(s)
	case 'R': // REDUCE
		args, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		at, ok := args.(*Tuple)
		if !ok {
			return fmt.Errorf("REDUCE with %s arguments", typeName(args))
		}
		g, ok := fn.(*Global)
		if !ok {
			return fmt.Errorf("REDUCE on a %s (only allowed globals may be called)", typeName(fn))
		}
		v, err := reduce(g.Name, at.Items)
		if err != nil {
			return err
		}
		return u.push(v)
	case 'b': // BUILD: only state for an OrderedDict (its _metadata) or a tensor
		state, err := u.pop()
		if err != nil {
			return err
		}
		obj, err := u.top()
		if err != nil {
			return err
		}
		switch obj.(type) {
		case *Dict, *TensorRef:
			_ = state // attributes such as _metadata carry nothing we need
		default:
			return fmt.Errorf("BUILD on a %s", typeName(obj))
		}
	default:
		return fmt.Errorf("opcode not allowed in a state-dict pickle (%s)", opName(op))
	}
	return nil
}

func opName(op byte) string {
	switch op {
	case 'i':
		return "INST"
	case 'o':
		return "OBJ"
	case 0x81:
		return "NEWOBJ"
	case 0x92:
		return "NEWOBJ_EX"
	case 'P':
		return "PERSID"
	case 0x82, 0x83, 0x84:
		return "EXT"
	case 'I', 'L', 'F', 'S', 'V', 'p', 'g':
		return "text-protocol opcode " + string(rune(op))
	}
	return "unknown"
}

func (u *unpickler) global(mod, name string, start int) error {
	full := mod + "." + name
	if !allowedGlobal(full) {
		return &RefusedGlobalError{Name: full, Offset: start}
	}
	return u.push(&Global{Name: full})
}

func setPairs(d *Dict, items []any) error {
	if len(items)%2 != 0 {
		return errors.New("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.Set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := uint(64 - 8*len(b))
		return int64(v<<shift) >> shift
	}
	// big two's complement (the legacy format's magic number)
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case bool:
		return "bool"
	case *Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		return "dict"
	case *Global:
		return "global " + x.Name
	case *StorageRef:
		return "storage"
	case *TensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

func persistentStorage(pid any) (*StorageRef, error) {
	t, ok := pid.(*Tuple)
	if !ok || len(t.Items) < 5 {
		return nil, fmt.Errorf("persistent id is a %s, want ('storage', type, key, location, numel)", typeName(pid))
	}
	if s, _ := t.Items[0].(string); s != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v, want 'storage'", t.Items[0])
	}
	g, ok := t.Items[1].(*Global)
	if !ok {
		return nil, fmt.Errorf("storage type is a %s", typeName(t.Items[1]))
	}
	dt, ok := storageTypes[g.Name]
	if !ok {
		return nil, fmt.Errorf("%s is not a storage type", g.Name)
	}
	key, ok := t.Items[2].(string)
	if !ok {
		return nil, fmt.Errorf("storage key is a %s", typeName(t.Items[2]))
	}
	if len(t.Items) > 5 && t.Items[5] != nil {
		return nil, fmt.Errorf("storage %s: legacy storage views (view_metadata) are not supported", key)
	}
	loc, _ := t.Items[3].(string)
	n, ok := t.Items[4].(int64)
	if !ok || n < 0 {
		return nil, fmt.Errorf("storage %s: bad element count %v", key, t.Items[4])
	}
	return &StorageRef{DType: dt, Key: key, Location: loc, NumElems: n}, nil
}

func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(*Tuple)
	if !ok {
		return nil, fmt.Errorf("%s is a %s, want a tuple of ints", what, typeName(v))
	}
	out := make([]int64, len(t.Items))
	for i, x := range t.Items {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("%s has a bad entry %v", what, x)
		}
		out[i] = n
	}
	return out, nil
}

func reduce(name string, args []any) (any, error) {
	switch name {
	case "collections.OrderedDict":
		d := newDict()
		if len(args) == 0 {
			return d, nil
		}
		if len(args) == 1 {
			if l, ok := args[0].(*List); ok {
				for _, it := range l.Items {
					p, ok := it.(*Tuple)
					if !ok || len(p.Items) != 2 {
						return nil, errors.New("OrderedDict: want a list of pairs")
					}
					if err := d.Set(p.Items[0], p.Items[1]); err != nil {
						return nil, err
					}
				}
				return d, nil
			}
		}
		return nil, errors.New("OrderedDict called with unsupported arguments")
	case "torch._utils._rebuild_tensor_v2":
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
		if len(args) < 4 {
			return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments", len(args))
		}
		st, ok := args[0].(*StorageRef)
		if !ok {
			return nil, fmt.Errorf("_rebuild_tensor_v2: storage is a %s", typeName(args[0]))
		}
		off, ok := args[1].(int64)
		if !ok || off < 0 {
			return nil, fmt.Errorf("_rebuild_tensor_v2: bad storage offset %v", args[1])
		}
		shape, err := intTuple(args[2], "size")
		if err != nil {
			return nil, err
		}
		stride, err := intTuple(args[3], "stride")
		if err != nil {
			return nil, err
		}
		if len(shape) != len(stride) {
			return nil, fmt.Errorf("_rebuild_tensor_v2: size %v and stride %v differ in rank", shape, stride)
		}
		return &TensorRef{Storage: st, Offset: off, Shape: shape, Stride: stride}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, errors.New("_rebuild_parameter without arguments")
		}
		t, ok := args[0].(*TensorRef)
		if !ok {
			return nil, fmt.Errorf("_rebuild_parameter of a %s", typeName(args[0]))
		}
		return t, nil
	}
	return nil, fmt.Errorf("refusing to call %s", name)
}
