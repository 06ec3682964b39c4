package nft

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// reader reads our table back over its own NETLINK_NETFILTER socket.
// google/nftables has no request for the ruleset generation and decodes
// every expression of every rule; a read-back needs only names, keys,
// comments and counters, so it asks and decodes just that.
type reader struct {
	c *netlink.Conn
}

func dialReader(netns int, deadline time.Time) (*reader, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("opening netfilter socket: %w", err)
	}
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting netfilter socket deadline: %w", err)
	}
	return &reader{c: c}, nil
}

func (r *reader) close() { closeLater(r.c) }

// request sends one nf_tables request and returns the replies; dump asks
// for all objects that match attrs.
func (r *reader) request(msgType uint16, family uint8, dump bool, attrs []netlink.Attribute) ([]netlink.Message, error) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	// No ack: a get is answered by its reply or by an error, and an ack
	// after the reply would be read as the answer to the next request.
	flags := netlink.Request
	if dump {
		flags = netlink.Request | netlink.Dump
	}
	return r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: flags},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, data...),
	})
}

// genID is the ruleset generation: the kernel bumps it by one on every
// committed nftables transaction in the namespace, ours or anyone's.
func (r *reader) genID() (uint32, error) {
	msgs, err := r.request(unix.NFT_MSG_GETGEN, unix.NFPROTO_UNSPEC, false, nil)
	if err != nil {
		return 0, fmt.Errorf("reading ruleset generation: %w", err)
	}
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("reading ruleset generation: no generation in the reply")
}

func decoder(m netlink.Message) (*netlink.AttributeDecoder, error) {
	if len(m.Data) < 4 {
		return nil, errors.New("short nf_tables message")
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	return ad, nil
}

func nested(b []byte) (*netlink.AttributeDecoder, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	return ad, nil
}

var tableName = []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: []byte(TableName + "\x00")}}

// readTable reads back the whole table: sets with their elements, chains
// with the comments of their rules. It returns nil when there is no
// table.
func (r *reader) readTable() (*Table, error) {
	msgs, err := r.request(unix.NFT_MSG_GETTABLE, unix.NFPROTO_INET, false, tableName)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading table: %w", err)
	}
	t := &Table{}
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_TABLE_FLAGS {
				t.dormant = ad.Uint32()&unix.NFT_TABLE_F_DORMANT != 0
			}
		}
	}
	if t.Sets, err = r.readSets(); err != nil {
		return nil, err
	}
	for i := range t.Sets {
		if t.Sets[i].Elems, err = r.readElems(t.Sets[i].Name, t.Sets[i].Type.interval()); err != nil {
			return nil, err
		}
	}
	if t.Chains, err = r.readChains(); err != nil {
		return nil, err
	}
	rows, err := r.readRules()
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, c := range t.Chains {
		idx[c.Name] = i
	}
	for _, row := range rows {
		if i, ok := idx[row.chain]; ok {
			t.Chains[i].Rules = append(t.Chains[i].Rules, ChainRule{Comment: row.comment})
		}
	}
	return t, nil
}

// readSets lists the named sets and maps of the table (anonymous sets
// belong to their rules). A set whose flags or types are not one of ours
// gets setUnknown, which makes the diff recreate the table.
func (r *reader) readSets() ([]TableSet, error) {
	msgs, err := r.request(unix.NFT_MSG_GETSET, unix.NFPROTO_INET, true,
		[]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: []byte(TableName + "\x00")}})
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	var out []TableSet
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, err
		}
		var name string
		var flags, keyType, keyLen, dataType uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_NAME:
				name = ad.String()
			case unix.NFTA_SET_FLAGS:
				flags = ad.Uint32()
			case unix.NFTA_SET_KEY_TYPE:
				keyType = ad.Uint32()
			case unix.NFTA_SET_KEY_LEN:
				keyLen = ad.Uint32()
			case unix.NFTA_SET_DATA_TYPE:
				dataType = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding set: %w", err)
		}
		if flags&unix.NFT_SET_ANONYMOUS != 0 {
			continue
		}
		out = append(out, TableSet{Name: name, Type: kernelSetType(flags, keyType, keyLen, dataType)})
	}
	slices.SortFunc(out, func(a, b TableSet) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func kernelSetType(flags, keyType, keyLen, dataType uint32) SetType {
	for _, t := range []SetType{SetIPv4, SetIPv6, SetIfaceIPv4, SetIfaceIPv6, MapIfaceVerdict, SetIPv4Net, SetIPv6Net, SetIPv4Port, SetIPv6Port, SetIface, SetIfaceMAC} {
		s := kernelSet(t, nil)
		var f uint32
		if s.IsMap {
			f = unix.NFT_SET_MAP
		}
		if s.Interval {
			f = unix.NFT_SET_INTERVAL
		}
		if flags != f || keyType != s.KeyType.GetNFTMagic() || keyLen != s.KeyType.Bytes {
			continue
		}
		if s.IsMap && dataType != unix.NFT_DATA_VERDICT {
			continue
		}
		return t
	}
	return setUnknown
}

// readElems lists one set's elements, sorted by key; those of an
// interval set paired into ranges.
func (r *reader) readElems(set string, interval bool) ([]Element, error) {
	msgs, err := r.request(unix.NFT_MSG_GETSETELEM, unix.NFPROTO_INET, true, []netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, fmt.Errorf("listing elements of set %s: %w", set, err)
	}
	var out []Element
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, err
		}
		for ad.Next() {
			if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					e, err := decodeElem(list.Bytes())
					if err != nil {
						return err
					}
					out = append(out, e)
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding elements of set %s: %w", set, err)
		}
	}
	if interval {
		return intervals(out), nil
	}
	return sortElems(out), nil
}

// intervals pairs the elements of an interval set, as the kernel lists
// them (each range a start and, unless it reaches the top, an end flagged
// endOnly by decodeElem), into ranges. An end without its start stays an
// endOnly element, for the diff to delete.
func intervals(raw []Element) []Element {
	slices.SortFunc(raw, func(a, b Element) int {
		// At one key, the end of the range before comes first.
		return cmp.Or(cmp.Compare(a.Key, b.Key), -cmp.Compare(btoi(a.endOnly), btoi(b.endOnly)))
	})
	out := raw[:0]
	for i := 0; i < len(raw); i++ {
		e := raw[i]
		if !e.endOnly && i+1 < len(raw) && raw[i+1].endOnly {
			e.End = raw[i+1].Key
			i++
		}
		out = append(out, e)
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func decodeElem(b []byte) (Element, error) {
	var e Element
	ad, err := nested(b)
	if err != nil {
		return e, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_FLAGS:
			e.endOnly = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_KEY:
			ad.Nested(func(k *netlink.AttributeDecoder) error {
				for k.Next() {
					if k.Type() == unix.NFTA_DATA_VALUE {
						e.Key = string(k.Bytes())
					}
				}
				return nil
			})
		case unix.NFTA_SET_ELEM_DATA:
			ad.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					if d.Type() != unix.NFTA_DATA_VERDICT {
						continue
					}
					d.Nested(func(v *netlink.AttributeDecoder) error {
						for v.Next() {
							if v.Type() == unix.NFTA_VERDICT_CHAIN {
								e.Goto = v.String()
							}
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	return e, ad.Err()
}

// readChains lists the chains of the table with their hooks, sorted by
// name. The kernel has no per-table chain dump: it lists the inet family.
func (r *reader) readChains() ([]Chain, error) {
	msgs, err := r.request(unix.NFT_MSG_GETCHAIN, unix.NFPROTO_INET, true, nil)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	var out []Chain
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, err
		}
		var table string
		var c Chain
		var hook *Hook
		var policy uint32 = nfAccept
		nat := false
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				table = ad.String()
			case unix.NFTA_CHAIN_NAME:
				c.Name = ad.String()
			case unix.NFTA_CHAIN_POLICY:
				policy = ad.Uint32()
			case unix.NFTA_CHAIN_TYPE:
				nat = ad.String() == "nat"
			case unix.NFTA_CHAIN_HOOK:
				hook = &Hook{}
				ad.Nested(func(h *netlink.AttributeDecoder) error {
					for h.Next() {
						switch h.Type() {
						case unix.NFTA_HOOK_HOOKNUM:
							hook.Name = hookName(h.Uint32())
						case unix.NFTA_HOOK_PRIORITY:
							hook.Priority = int32(h.Uint32())
						}
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding chain: %w", err)
		}
		if table != TableName {
			continue
		}
		if hook != nil {
			hook.Accept = policy == nfAccept
			hook.NAT = nat
			c.Hook = hook
		}
		out = append(out, c)
	}
	sortChains(out)
	return out, nil
}

var hookNums = map[string]uint32{
	"prerouting":  unix.NF_INET_PRE_ROUTING,
	"forward":     unix.NF_INET_FORWARD,
	"input":       unix.NF_INET_LOCAL_IN,
	"output":      unix.NF_INET_LOCAL_OUT,
	"postrouting": unix.NF_INET_POST_ROUTING,
}

func hookName(n uint32) string {
	for name, v := range hookNums {
		if v == n {
			return name
		}
	}
	return fmt.Sprintf("hook%d", n)
}

// readRules lists every rule of the table in chain order with its comment
// and counter.
func (r *reader) readRules() ([]ruleCount, error) {
	msgs, err := r.request(unix.NFT_MSG_GETRULE, unix.NFPROTO_INET, true,
		[]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")}})
	if err != nil {
		return nil, fmt.Errorf("listing rules: %w", err)
	}
	out := make([]ruleCount, 0, len(msgs))
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, err
		}
		var rc ruleCount
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_CHAIN:
				rc.chain = ad.String()
			case unix.NFTA_RULE_HANDLE:
				rc.handle = ad.Uint64()
			case unix.NFTA_RULE_USERDATA:
				rc.comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(list *netlink.AttributeDecoder) error {
					for list.Next() {
						p, b, ok := decodeCounter(list.Bytes())
						if ok {
							rc.packets += p
							rc.bytes += b
						}
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding rule: %w", err)
		}
		out = append(out, rc)
	}
	return out, nil
}

// decodeCounter reads a counter expression; ok is false for any other.
func decodeCounter(b []byte) (packets, bytes uint64, ok bool) {
	ad, err := nested(b)
	if err != nil {
		return 0, 0, false
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			ok = ad.String() == "counter"
		case unix.NFTA_EXPR_DATA:
			if !ok {
				return 0, 0, false
			}
			ad.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					switch d.Type() {
					case unix.NFTA_COUNTER_PACKETS:
						packets = d.Uint64()
					case unix.NFTA_COUNTER_BYTES:
						bytes = d.Uint64()
					}
				}
				return nil
			})
		}
	}
	return packets, bytes, ok && ad.Err() == nil
}

// kernelSet is the google/nftables description of a named set.
func kernelSet(t SetType, table *nftables.Table) *nftables.Set {
	s := &nftables.Set{Table: table}
	switch t {
	case SetIPv4:
		s.KeyType = nftables.TypeIPAddr
	case SetIPv6:
		s.KeyType = nftables.TypeIP6Addr
	case SetIfaceIPv4:
		s.KeyType = ifaceIPv4
	case SetIfaceIPv6:
		s.KeyType = ifaceIPv6
	case MapIfaceVerdict:
		s.KeyType, s.DataType, s.IsMap = nftables.TypeIFName, nftables.TypeVerdict, true
		// nft keeps strings in host byte order; without this hint it
		// prints the keys swapped (as "").
		s.KeyByteOrder = binaryutil.NativeEndian
	case SetIPv4Net:
		s.KeyType, s.Interval = nftables.TypeIPAddr, true
	case SetIPv6Net:
		s.KeyType, s.Interval = nftables.TypeIP6Addr, true
	case SetIPv4Port:
		s.KeyType = ipv4Port
	case SetIPv6Port:
		s.KeyType = ipv6Port
	case SetIface:
		s.KeyType, s.KeyByteOrder = nftables.TypeIFName, binaryutil.NativeEndian
	case SetIfaceMAC:
		s.KeyType = ifaceMAC
	}
	return s
}

// The concatenated key types; nft creates such sets as plain hash sets
// (no concat flag), and so do we.
var (
	ifaceIPv4, ifaceIPv6 = concat(nftables.TypeIFName, nftables.TypeIPAddr), concat(nftables.TypeIFName, nftables.TypeIP6Addr)
	ipv4Port             = concat(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	ipv6Port             = concat(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	ifaceMAC             = concat(nftables.TypeIFName, nftables.TypeEtherAddr)
)

func concat(types ...nftables.SetDatatype) nftables.SetDatatype {
	t, err := nftables.ConcatSetType(types...)
	if err != nil {
		return nftables.TypeInvalid // three types never overflow
	}
	return t
}

// nfAccept is NF_ACCEPT, a base chain's accept policy.
const nfAccept = 1
