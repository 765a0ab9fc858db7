package schedule

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/partition"
)

// parseDNS reads a DNS fault in the words of `pontoon partition dns`: the kind and its
// argument, then any number of --name NAME and --from GUEST.
func parseDNS(s string) (names.Fault, error) {
	w := strings.Fields(s)
	i := slices.IndexFunc(w, func(x string) bool { return strings.HasPrefix(x, "--") })
	if i < 0 {
		i = len(w)
	}
	f, err := names.ParseFault(w[:i])
	if err != nil {
		return f, err
	}
	for rest := w[i:]; len(rest) > 0; rest = rest[2:] {
		if len(rest) < 2 || strings.HasPrefix(rest[1], "--") {
			return f, fmt.Errorf("%s needs a value, e.g. --name db or --from n1", rest[0])
		}
		switch rest[0] {
		case "--name":
			f.Names = append(f.Names, rest[1])
		case "--from":
			f.From = append(f.From, rest[1])
		default:
			return f, fmt.Errorf("unknown flag %s; a DNS fault takes --name NAME and --from GUEST", rest[0])
		}
	}
	return f, nil
}

// checkDNS checks a DNS fault's askers against the guests; the server checks the rest.
func checkDNS(s string, guests []partition.Guest) error {
	f, err := parseDNS(s)
	if err != nil {
		return err
	}
	for _, from := range f.From {
		if !slices.ContainsFunc(guests, func(g partition.Guest) bool { return g.Name == from || g.IP.String() == from }) {
			return fmt.Errorf("--from %q: no such guest; name the asking guest by name or address", from)
		}
	}
	return nil
}
