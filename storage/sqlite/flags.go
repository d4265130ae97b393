package sqlite

import (
	"fmt"
	"strings"

	"github.com/carepost/carepost/storage"
)

// System flags are stored as bits of messages.flags (RFC 9051 §2.3.2);
// keywords as a space-separated list in messages.keywords.
const (
	flagSeen int64 = 1 << iota
	flagAnswered
	flagFlagged
	flagDeleted
	flagDraft
)

var systemFlags = []struct {
	name string
	bit  int64
}{
	{storage.FlagSeen, flagSeen},
	{storage.FlagAnswered, flagAnswered},
	{storage.FlagFlagged, flagFlagged},
	{storage.FlagDeleted, flagDeleted},
	{storage.FlagDraft, flagDraft},
}

// maxKeywordLen bounds one keyword (Dovecot and Cyrus accept a few hundred
// bytes at most too).
const maxKeywordLen = 128

// flagSet is a parsed list of flags.
type flagSet struct {
	bits     int64
	keywords []string // as given, without case-insensitive duplicates
}

// parseFlags canonicalises flags: system flags matched in any case ("\seen"
// is \Seen), keywords kept as given but deduplicated case-insensitively,
// \Recent dropped (RFC 9051 §2.3.2: it is a session property, never
// stored). A keyword must be an IMAP atom (RFC 9051 §9 flag-keyword).
func parseFlags(flags []string) (flagSet, error) {
	var fs flagSet
next:
	for _, f := range flags {
		for _, sf := range systemFlags {
			if strings.EqualFold(f, sf.name) {
				fs.bits |= sf.bit
				continue next
			}
		}
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		if !validKeyword(f) {
			return flagSet{}, fmt.Errorf("%w: %q", storage.ErrInvalidFlag, f)
		}
		fs.keywords = addKeyword(fs.keywords, f)
	}
	return fs, nil
}

// validKeyword: atom characters only (no SP, CTL, non-ASCII or
// atom-specials), and a backslash only as the first character (RFC 9051
// flag-extension).
func validKeyword(f string) bool {
	if f == "" || len(f) > maxKeywordLen {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == ']':
			return false
		case c == '\\' && i > 0:
			return false
		}
	}
	return true
}

func hasKeyword(list []string, k string) bool {
	for _, x := range list {
		if strings.EqualFold(x, k) {
			return true
		}
	}
	return false
}

// addKeyword appends k unless list has it in some case.
func addKeyword(list []string, k string) []string {
	if hasKeyword(list, k) {
		return list
	}
	return append(list, k)
}

func splitKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func joinKeywords(list []string) string { return strings.Join(list, " ") }

// formatFlags lists system flags in a fixed order, then keywords.
func formatFlags(bits int64, keywords string) []string {
	if bits == 0 && keywords == "" {
		return []string{} // no allocation
	}
	out := make([]string, 0, 2)
	for _, sf := range systemFlags {
		if bits&sf.bit != 0 {
			out = append(out, sf.name)
		}
	}
	return append(out, splitKeywords(keywords)...)
}

// mergeKeywords returns stored (a joined list) with the keywords of add it
// lacks, and whether it changed.
func mergeKeywords(stored string, add []string) (string, bool) {
	list := splitKeywords(stored)
	n := len(list)
	for _, k := range add {
		list = addKeyword(list, k)
	}
	return joinKeywords(list), len(list) != n
}

// applyFlags computes the flags of a message after a STORE.
func applyFlags(bits int64, keywords string, op storage.FlagOp, fs flagSet) (int64, string) {
	switch op {
	case storage.FlagsSet:
		return fs.bits, joinKeywords(fs.keywords)
	case storage.FlagsAdd:
		kw, _ := mergeKeywords(keywords, fs.keywords)
		return bits | fs.bits, kw
	case storage.FlagsRemove:
		var kept []string
		for _, k := range splitKeywords(keywords) {
			if !hasKeyword(fs.keywords, k) {
				kept = append(kept, k)
			}
		}
		return bits &^ fs.bits, joinKeywords(kept)
	}
	return bits, keywords
}
