package store

import (
	"bytes"
	"calico/internal/quote"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Decode reads one or more resources from YAML or JSON: several YAML
// documents, a `kind: List` (or `<Kind>List`) with items, or both. Unknown
// kinds and unknown fields are refused, naming the document and the field.
// Decode does not validate beyond the shape; the store validates on write.
func Decode(data []byte) ([]Resource, error) {
	var out []Resource
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var node yaml.Node
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
		if err := checkNumbers(&node); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
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

// checkNumbers refuses numbers no resource field can hold (1e400): YAML
// passes an unquoted number it cannot read on as a string.
func checkNumbers(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Style == 0 && numberRE().MatchString(n.Value) {
		return fmt.Errorf("line %d: %s is out of range for a number", n.Line, quote.Clip(n.Value))
	}
	for _, c := range n.Content {
		if err := checkNumbers(c); err != nil {
			return err
		}
	}
	return nil
}

var numberRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
})

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
		return nil, fmt.Errorf("apiVersion %q is not supported (want %s)", quote.Clip(head.APIVersion), APIVersion)
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
	if err := decodeStrict(j, r); err != nil {
		return nil, fmt.Errorf("%s %q: %s", kind.Name, quote.Clip(nameOf(j)), cleanJSONError(err))
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
		return nil, fmt.Errorf("kind %q is not a kind name: did you mean %s?", quote.Clip(name), k.Name)
	}
	return nil, fmt.Errorf("unknown kind %q", quote.Clip(name))
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
		return toYAML(v)
	case JSON:
		b, err := json.MarshalIndent(v, "", "  ")
		return append(b, '\n'), err
	}
	return nil, fmt.Errorf("unknown output format %q (want yaml or json)", quote.Clip(string(format)))
}

// toYAML writes v as YAML as Calico's tools do: the field names of its
// JSON encoding, keys sorted, sequences not indented, and strings quoted
// whenever a YAML 1.1 reader (calicoctl, kubectl) would take them for
// something else.
func toYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	plain(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// plain drops the JSON styles (quoted strings, flow mappings), sorts
// mapping keys, and quotes strings that YAML 1.1 reads as booleans.
func plain(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && yaml11Bool[n.Value] {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		plain(c)
	}
	if n.Kind == yaml.MappingNode {
		pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
		slices.SortStableFunc(pairs, func(a, b [2]*yaml.Node) int { return strings.Compare(a[0].Value, b[0].Value) })
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p[0], p[1])
		}
	}
}

// yaml11Bool are the words YAML 1.1 reads as booleans.
var yaml11Bool = map[string]bool{}

func init() {
	for _, w := range strings.Fields("y yes true on n no false off") {
		for _, v := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
			yaml11Bool[v] = true
		}
	}
}
