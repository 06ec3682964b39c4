package ipam

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// extra is the members of a JSON object that the Go type it was decoded
// into has no field for: fields a newer Calico writes, which this IPAM
// does not use but must write back as they came, so that Calico's own
// tools find them again after we rewrite a block, a handle or an
// affinity.
type extra map[string]json.RawMessage

// decodeKeeping decodes data into v, a pointer to a struct, and returns
// the object's members that no field of v takes, less those named in
// drop (fields an older version of ours wrote that Calico does not
// have). encoding/json matches names case-insensitively, so a member
// whose name differs from a field's only in case went into the field and
// is not kept twice.
func decodeKeeping(data []byte, v any, drop ...string) (extra, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	known := append(jsonNames(reflect.TypeOf(v).Elem()), drop...)
	maps.DeleteFunc(all, func(k string, _ json.RawMessage) bool {
		return slices.ContainsFunc(known, func(n string) bool { return strings.EqualFold(n, k) })
	})
	if len(all) == 0 {
		return nil, nil
	}
	for k, raw := range all {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			all[k] = buf.Bytes()
		}
	}
	return all, nil
}

// encodeKeeping encodes v, a struct, with the members of x after its own
// fields, in name order.
func encodeKeeping(v any, x extra) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(x) == 0 {
		return b, err
	}
	out := bytes.NewBuffer(b[: len(b)-1 : len(b)-1])
	for _, k := range slices.Sorted(maps.Keys(x)) {
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		out.Write(name)
		out.WriteByte(':')
		out.Write(x[k])
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// jsonNames are the JSON member names of a struct type's fields.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}
