package sqlite

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/carepost/carepost/storage"
)

// maxNameLen bounds a mailbox name in bytes (Dovecot: 255 per level, a few
// hundred in all; we allow some depth).
const maxNameLen = 512

// canonName checks a mailbox name and returns it in canonical form: "INBOX"
// in any case is INBOX, also as the first level of a hierarchy
// ("inbox/x" is "INBOX/x"), RFC 9051 §5.1. Names are UTF-8 (the IMAP
// adapter decodes modified UTF-7); empty levels, control characters and
// the LIST wildcards % and * are refused (RFC 9051 §5.1 SHOULD NOT).
func canonName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q %s", storage.ErrInvalidName, name, why)
	}
	if name == "" {
		return bad("is empty")
	}
	if len(name) > maxNameLen {
		return bad("is too long")
	}
	if !utf8.ValidString(name) {
		return bad("is not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return bad("contains a control character")
		}
		if r == '%' || r == '*' {
			return bad("contains a wildcard")
		}
	}
	d := string(storage.Delimiter)
	if strings.HasPrefix(name, d) || strings.HasSuffix(name, d) || strings.Contains(name, d+d) {
		return bad("has an empty level")
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX"+d) {
		return "INBOX" + name[5:], nil
	}
	return name, nil
}

// childRange returns the bounds [lo, hi) of the names of the descendants of
// name, for an indexed range query: "a/" <= child < "a0" ('0' follows '/').
func childRange(name string) (lo, hi string) {
	return name + string(storage.Delimiter), name + string(storage.Delimiter+1)
}
