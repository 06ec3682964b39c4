package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// taggedTypes caches tagged's answers, by reflect.Type.
var taggedTypes sync.Map

// tagged reports whether unsupported can find a field with a calico tag
// in a value of type t: its walk costs reflection and a path string per
// field and element (a fifth of decoding a stored WorkloadEndpoint), and
// most of a resource has no such field below it.
func tagged(t reflect.Type) bool {
	if v, ok := taggedTypes.Load(t); ok {
		return v.(bool)
	}
	b := taggedIn(t, map[reflect.Type]bool{})
	taggedTypes.Store(t, b)
	return b
}

// taggedIn is tagged without the cache; seen are the types on the way
// (a type met again is searched where it was first met).
func taggedIn(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true // any type may be in it
	case reflect.Pointer, reflect.Slice:
		return taggedIn(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if _, ok := f.Tag.Lookup("calico"); ok || taggedIn(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// unsupported reports, for every field of v tagged calico:"unsupported"
// (at any depth) that is set to anything but a zero value or Calico's
// default, that it is not supported here.
func (c *checker) unsupported(path string, v reflect.Value) {
	if v.Kind() != reflect.Interface && !tagged(v.Type()) {
		return // nothing tagged below: most of a resource
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			c.unsupported(path, v.Elem())
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // Raw, or bytes: checked by the field's tag
		}
		for i := range v.Len() {
			c.unsupported(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Struct:
		for _, f := range fieldsOf(v.Type()) {
			field := path
			if f.name != "" {
				field = strings.TrimPrefix(path+"."+f.name, ".")
			}
			if f.tagged {
				c.unsupportedField(field, f.tag, v.Field(f.index))
				continue
			}
			c.unsupported(field, v.Field(f.index))
		}
	}
}

// walkField is a field unsupported looks at: one with a calico tag, or
// with such a field below it.
type walkField struct {
	index  int
	name   string // in JSON; "" for none
	tag    string // calico's
	tagged bool   // it has a calico tag
}

// walkFields caches fieldsOf's answers, by struct type.
var walkFields sync.Map

// fieldsOf are the fields of struct type t that unsupported looks at.
func fieldsOf(t reflect.Type) []walkField {
	if v, ok := walkFields.Load(t); ok {
		return v.([]walkField)
	}
	var out []walkField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			name = ""
		}
		tag, ok := f.Tag.Lookup("calico")
		if ok || tagged(f.Type) {
			out = append(out, walkField{index: i, name: name, tag: tag, tagged: ok})
		}
	}
	walkFields.Store(t, out)
	return out
}

func (c *checker) unsupportedField(field, tag string, v reflect.Value) {
	what, def, _ := strings.Cut(tag, ",default=")
	if what != "unsupported" {
		return
	}
	raw, _ := v.Interface().(Raw)
	if isZeroJSON(raw) || def != "" && bytes.Equal(compactJSON(raw), []byte(def)) {
		return
	}
	c.errorf(field, "is not supported here (%s)", clipJSON(raw))
}

// isZeroJSON reports whether a value is absent or JSON's zero of its type.
func isZeroJSON(raw Raw) bool {
	switch string(compactJSON(raw)) {
	case "", "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	return false
}

func compactJSON(raw Raw) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// clipJSON is a short rendering of a value for a message.
func clipJSON(raw Raw) string {
	s := string(compactJSON(raw))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
