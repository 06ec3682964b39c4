package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	yamlv3 "gopkg.in/yaml.v3"
	"sigs.k8s.io/yaml"
)

// Decode reads one or more resources from YAML or JSON: several YAML
// documents, a `kind: List` (or `<Kind>List`) with items, or both. Unknown
// kinds and unknown fields are refused, naming the document and the field.
// Decode does not validate beyond the shape; the store validates on write.
func Decode(data []byte) ([]Resource, error) {
	var out []Resource
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var node yamlv3.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %s", doc, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if len(node.Content) == 0 || node.Content[0].Tag == "!!null" {
			continue // an empty document
		}
		// Decode with YAML 1.2 rules (yes, no, on, off and y are strings,
		// not booleans) and hand the result to encoding/json, whose field
		// names and strictness the resources define.
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fmt.Errorf("document %d: %s", doc, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		j, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: not a resource: %w", doc, err)
		}
		rs, err := decodeJSON(j)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no resources in the input")
	}
	return out, nil
}

// decodeJSON decodes one JSON document: a resource or a list of them.
func decodeJSON(j []byte) ([]Resource, error) {
	var head struct {
		TypeMeta
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, errors.New("not a resource: expected a mapping with apiVersion and kind")
	}
	if head.APIVersion != APIVersion {
		if head.APIVersion == "" {
			return nil, fmt.Errorf("apiVersion is missing (want %s)", APIVersion)
		}
		return nil, fmt.Errorf("apiVersion %q is not supported (want %s)", head.APIVersion, APIVersion)
	}
	if head.Kind == "" {
		return nil, errors.New("kind is missing")
	}
	if list, ok := strings.CutSuffix(head.Kind, "List"); ok {
		var out []Resource
		for i, item := range head.Items {
			rs, err := decodeJSON(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			if list != "" && rs[0].Type().Kind != list {
				return nil, fmt.Errorf("item %d: a %s in a %s", i+1, rs[0].Type().Kind, head.Kind)
			}
			out = append(out, rs...)
		}
		return out, nil
	}
	kind, err := exactKind(head.Kind)
	if err != nil {
		return nil, err
	}
	r := kind.New()
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	if err := d.Decode(r); err != nil {
		return nil, fmt.Errorf("%s %q: %s", kind.Name, nameOf(j), cleanJSONError(err))
	}
	return []Resource{r}, nil
}

func exactKind(name string) (*Kind, error) {
	for _, k := range kinds {
		if k.Name == name {
			return k, nil
		}
	}
	if k, err := LookupKind(name); err == nil {
		return nil, fmt.Errorf("kind %q is not a kind name: did you mean %s?", name, k.Name)
	}
	return nil, fmt.Errorf("unknown kind %q", name)
}

// nameOf digs the name out of a resource that failed to decode, for the
// error message.
func nameOf(j []byte) string {
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	json.Unmarshal(j, &m)
	return m.Metadata.Name
}

// cleanJSONError turns encoding/json's messages into ones that name the
// field in the resource's own terms.
func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: cannot be a %s", te.Field, te.Value)
	}
	s := strings.TrimPrefix(err.Error(), "json: ")
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "yaml: ")
	return s
}

// Format is an output encoding.
type Format string

const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// Encode writes one resource in format.
func Encode(r Resource, format Format) ([]byte, error) { return marshal(r, format) }

// EncodeList writes resources of one kind as a <Kind>List, which Decode
// reads back.
func EncodeList(kind *Kind, rs []Resource, format Format) ([]byte, error) {
	if rs == nil {
		rs = []Resource{}
	}
	return marshal(struct {
		TypeMeta
		Items []Resource `json:"items"`
	}{TypeMeta{Kind: kind.Name + "List", APIVersion: APIVersion}, rs}, format)
}

func marshal(v any, format Format) ([]byte, error) {
	switch format {
	case YAML:
		return yaml.Marshal(v)
	case JSON:
		b, err := json.MarshalIndent(v, "", "  ")
		return append(b, '\n'), err
	}
	return nil, fmt.Errorf("unknown output format %q (want yaml or json)", format)
}
