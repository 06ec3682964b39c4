package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"calico/internal/quote"
)

// EncodeStored is the stored form of r: its JSON without resourceVersion.
func EncodeStored(r Resource) (string, error) {
	m := r.Meta()
	rv := m.ResourceVersion
	m.ResourceVersion = ""
	b, err := json.Marshal(r)
	m.ResourceVersion = rv
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", IDOf(r), err)
	}
	return string(b), nil
}

// DecodeStored reads a value from the datastore as another Calico client
// may have written it. It never fails: what cannot be used exactly as
// written is listed in the result's Metadata.Problems, each naming the
// field, so that the node enforces the resource fail-closed and reports
// it. A value that cannot be decoded at all gives an empty resource named
// by its key with one problem at the field "" (Broken reports it).
// The problems are those of Validate, plus fields Calico's API does not
// have. A rev above 0 is the resource's revision (resourceVersion).
func DecodeStored(id ID, val []byte, rev int64) Resource {
	r, err := decodeKnown(id, val)
	strict := err == nil
	if !strict {
		r = id.Kind.New()
		err = json.Unmarshal(val, r)
	}
	if err == nil && KindOf(r) == nil {
		err = fmt.Errorf("kind %q is not %s", quote.Clip(r.Type().Kind), id.Kind.Name)
	}
	if err != nil {
		r = id.Kind.New()
		r.Meta().Name, r.Meta().Namespace = id.Name, id.Namespace
		r.Meta().Problems = []FieldError{{Msg: "cannot be read: " + cleanJSONError(err)}}
	} else {
		if !strict {
			var v any
			json.Unmarshal(val, &v) // it decoded above
			var unknown []string
			unknownFields(reflect.TypeOf(r), v, "", &unknown)
			for _, f := range unknown {
				r.Meta().Problems = append(r.Meta().Problems, FieldError{Field: f, Msg: "is not a field of Calico's API"})
			}
		}
		if m := r.Meta(); m.Name != id.Name || m.Namespace != id.Namespace {
			r.Meta().Problems = append(r.Meta().Problems, FieldError{Field: "metadata.name", Msg: fmt.Sprintf("does not match the key (%s)", id)})
			m.Name, m.Namespace = id.Name, id.Namespace
		}
		r.Meta().Problems = append(r.Meta().Problems, check(r, true)...)
	}
	if rev > 0 {
		r.Meta().ResourceVersion = fmt.Sprint(rev)
	}
	// The constants rather than decoded copies of them: a node keeps
	// every endpoint of the fleet.
	if t := r.Type(); t.Kind == id.Kind.Name && t.APIVersion == APIVersion {
		t.Kind, t.APIVersion = id.Kind.Name, APIVersion
	}
	return r
}

// decodeKnown decodes val when it is one JSON value with no member our
// API lacks: almost every stored value, which then needs no second
// decoding to look for such members (that was a third of a fresh node's
// decoding of the datastore). Any error sends the caller the slow way,
// which reports every unknown member, or the error as Unmarshal words it.
// So does a value with any byte beyond ASCII: encoding/json matches
// names with Unicode's case folding ("ſpec" is spec), which unknownFields
// does not, and reports such a member.
func decodeKnown(id ID, val []byte) (Resource, error) {
	for _, b := range val {
		if b >= utf8.RuneSelf {
			return nil, errors.New("not ASCII")
		}
	}
	r := id.Kind.New()
	dec := json.NewDecoder(bytes.NewReader(val))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more after the value")
	}
	return r, nil
}

// Broken reports whether r stands for a value that could not be decoded
// at all (DecodeStored).
func Broken(r Resource) bool {
	return slices.ContainsFunc(r.Meta().Problems, func(p FieldError) bool { return p.Field == "" })
}

// unknownFields appends to out the path of every member of the JSON value
// v that type t has no field for. Matching is case-insensitive, as
// encoding/json's (and Calico's) decoding is.
func unknownFields(t reflect.Type, v any, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decodes itself (Raw, Protocol, Port, …)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			f, ok := fields[strings.ToLower(k)]
			if !ok {
				*out = append(*out, join(path, k))
				continue
			}
			unknownFields(f.Type, m[k], join(path, f.name), out)
		}
	case reflect.Slice, reflect.Array:
		if l, ok := v.([]any); ok {
			for i, e := range l {
				unknownFields(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				unknownFields(t.Elem(), m[k], join(path, k), out)
			}
		}
	}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

type jsonField struct {
	reflect.Type
	name string
}

var fieldCache sync.Map // reflect.Type → map[string]jsonField

// jsonFields maps the lower-cased JSON names of a struct's fields,
// embedded structs' included, to their types.
func jsonFields(t reflect.Type) map[string]jsonField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]jsonField)
	}
	m := map[string]jsonField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem() // promoted as a struct's are
			}
			for k, v := range jsonFields(ft) {
				m[k] = v
			}
		default:
			if name == "" {
				name = f.Name
			}
			m[strings.ToLower(name)] = jsonField{f.Type, name}
		}
	}
	fieldCache.Store(t, m)
	return m
}

// decodeStrict decodes one resource as Calico's API defines it, refusing
// fields it does not have (naming each, with its path).
func decodeStrict(j []byte, r Resource) error {
	if err := json.Unmarshal(j, r); err != nil {
		return err
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	d.Decode(&v)
	var unknown []string
	unknownFields(reflect.TypeOf(r), v, "", &unknown)
	switch len(unknown) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("unknown field %q", quote.Clip(unknown[0]))
	}
	for i, f := range unknown {
		unknown[i] = fmt.Sprintf("%q", quote.Clip(f))
	}
	if len(unknown) > 10 {
		unknown = append(unknown[:10], "…")
	}
	return fmt.Errorf("unknown fields %s", strings.Join(unknown, ", "))
}
