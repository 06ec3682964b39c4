package store

import (
	"maps"
	"slices"
	"strings"
)

// ResourcePrefix is where every resource lives in etcd.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// Key is where the resource id lives.
func Key(id ID) string {
	if id.Kind.Namespaced {
		return ResourcePrefix + id.Kind.Plural + "/" + id.Namespace + "/" + id.Name
	}
	return ResourcePrefix + id.Kind.Plural + "/" + id.Name
}

// kindPrefix is the prefix of every resource of kind (in namespace ns, if
// given).
func kindPrefix(k *Kind, ns string) string {
	if k.Namespaced && ns != "" {
		return ResourcePrefix + k.Plural + "/" + ns + "/"
	}
	return ResourcePrefix + k.Plural + "/"
}

// ParseKey reads a resource key back into an ID.
func ParseKey(key string) (ID, bool) {
	rest, ok := strings.CutPrefix(key, ResourcePrefix)
	if !ok {
		return ID{}, false
	}
	parts := strings.Split(rest, "/")
	for _, k := range kinds {
		if parts[0] != k.Plural {
			continue
		}
		switch {
		case k.Namespaced && len(parts) == 3:
			return ID{Kind: k, Namespace: parts[1], Name: parts[2]}, true
		case !k.Namespaced && len(parts) == 2:
			return ID{Kind: k, Name: parts[1]}, true
		}
	}
	return ID{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
