package config

import (
	"fmt"
	"slices"
	"strings"
)

// Class is a bit mask of keyspace event classes, with Valkey's
// VALKEYMODULE_NOTIFY_* values so the C shim can compare it directly.
type Class int

// Event classes.
const (
	ClassGeneric Class = 1 << 2
	ClassString  Class = 1 << 3
	ClassList    Class = 1 << 4
	ClassSet     Class = 1 << 5
	ClassHash    Class = 1 << 6
	ClassZset    Class = 1 << 7
	ClassExpired Class = 1 << 8
	ClassEvicted Class = 1 << 9
	ClassStream  Class = 1 << 10
	ClassKeymiss Class = 1 << 11
	ClassModule  Class = 1 << 13
	ClassNew     Class = 1 << 14

	// ClassAll is what notify-keyspace-events calls "A": every class but
	// keymiss and new, which must be named.
	ClassAll = ClassGeneric | ClassString | ClassList | ClassSet | ClassHash | ClassZset |
		ClassExpired | ClassEvicted | ClassStream | ClassModule
	// ClassesSubscribed is every class the module asks the server for.
	ClassesSubscribed = ClassAll | ClassKeymiss | ClassNew
	// DefaultClasses are enabled at load: all but keymiss.
	DefaultClasses = ClassAll | ClassNew
)

type classInfo struct {
	name   string
	letter byte
	class  Class
}

// classNames lists every class with its name and notify-keyspace-events
// letter, in the order EVENT LIST shows them.
var classNames = []classInfo{
	{"generic", 'g', ClassGeneric},
	{"string", '$', ClassString},
	{"list", 'l', ClassList},
	{"set", 's', ClassSet},
	{"hash", 'h', ClassHash},
	{"zset", 'z', ClassZset},
	{"stream", 't', ClassStream},
	{"expired", 'x', ClassExpired},
	{"evicted", 'e', ClassEvicted},
	{"keymiss", 'm', ClassKeymiss},
	{"new", 'n', ClassNew},
	{"module", 'd', ClassModule},
}

// ParseClasses reads class names (generic, string, ..., all) or
// notify-keyspace-events letters (g$lshzt xemnd A), separated by commas or
// spaces, from one or more arguments.
func ParseClasses(args []string) (Class, error) {
	var mask Class
	n := 0
	for _, arg := range args {
		for _, tok := range strings.FieldsFunc(arg, func(r rune) bool { return r == ',' || r == ' ' }) {
			n++
			c, ok := classByName(strings.ToLower(tok))
			if !ok {
				if c, ok = classByLetters(tok); !ok {
					return 0, fmt.Errorf("unknown event class %q; use names (generic, string, list, set, hash, zset, stream, expired, evicted, keymiss, new, module, all) or notify-keyspace-events letters (g$lshztxemndA)", tok)
				}
			}
			mask |= c
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("no event class given; name at least one, e.g. hash or all")
	}
	return mask, nil
}

func classByName(name string) (Class, bool) {
	if name == "all" {
		return ClassAll, true
	}
	for _, c := range classNames {
		if c.name == name {
			return c.class, true
		}
	}
	return 0, false
}

func classByLetters(tok string) (Class, bool) {
	var mask Class
	for i := 0; i < len(tok); i++ {
		if tok[i] == 'A' {
			mask |= ClassAll
			continue
		}
		j := slices.IndexFunc(classNames, func(c classInfo) bool { return c.letter == tok[i] })
		if j < 0 {
			return 0, false
		}
		mask |= classNames[j].class
	}
	return mask, true
}

// ClassNames returns the names of the classes in mask, in a fixed order.
func ClassNames(mask Class) []string {
	var out []string
	for _, c := range classNames {
		if mask&c.class != 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// eventClasses maps each keyspace event Valkey 7.2 to 9.1 raises to its
// class.
var eventClasses = map[string]Class{}

func init() {
	for _, l := range []struct {
		class Class
		names string
	}{
		{ClassGeneric, "del expire rename_from rename_to move_from move_to copy_to restore persist"},
		{ClassExpired, "expired"},
		{ClassEvicted, "evicted"},
		{ClassNew, "new"},
		{ClassKeymiss, "keymiss"},
		{ClassString, "set setrange incrby incrbyfloat append setbit pfadd"},
		{ClassList, "lpush rpush lpop rpop linsert lset lrem ltrim sortstore"},
		{ClassSet, "sadd srem spop sinterstore sunionstore sdiffstore"},
		// with 9.0's field expiry
		{ClassHash, "hset hdel hincrby hincrbyfloat hexpire hpersist hexpired"},
		{ClassZset, "zadd zincr zrem zremrangebyrank zremrangebyscore zremrangebylex zpopmin zpopmax " +
			"zinterstore zunionstore zdiffstore zrangestore georadiusstore geosearchstore"},
		{ClassStream, "xadd xtrim xdel xsetid xgroup-create xgroup-createconsumer xgroup-delconsumer xgroup-destroy xgroup-setid"},
	} {
		for _, name := range strings.Fields(l.names) {
			eventClasses[name] = l.class
		}
	}
}

// EventClass is the class of the notifications that carry an event: a
// name with a dot (json.set) is another module's, an unknown name none.
func EventClass(event string) (Class, bool) {
	if c, ok := eventClasses[event]; ok {
		return c, true
	}
	if strings.Contains(event, ".") {
		return ClassModule, true
	}
	return 0, false
}

// AllEvents is the event list that matches every event.
const AllEvents = "*"

// ParseEvents normalises a comma-separated event list: lower case, sorted,
// without duplicates, so "hset,set" and "set,HSET" are the same list. "*"
// means every event. Names other modules raise (class module) are accepted
// when they contain a dot, like "json.set".
func ParseEvents(list string) ([]string, error) {
	if list == AllEvents {
		return nil, nil
	}
	if list == "" {
		return nil, fmt.Errorf("empty event list; give event names like set,hset or * for all")
	}
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case name == "":
			return nil, fmt.Errorf("empty event name in %q; separate names with single commas", list)
		case name == AllEvents:
			return nil, fmt.Errorf("* cannot be combined with other events in %q", list)
		case !isEvent(name):
			return nil, fmt.Errorf("unknown event %q; use names from keyspace notifications (set, hset, del, expired, incrby, ...), module events like json.set, or *", name)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func isEvent(name string) bool {
	_, ok := EventClass(name)
	return ok
}

// FormatEvents is the inverse of ParseEvents.
func FormatEvents(events []string) string {
	if events == nil {
		return AllEvents
	}
	return strings.Join(events, ",")
}
