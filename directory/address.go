package directory

import (
	"fmt"
	"strings"

	"github.com/carepost/carepost/refusal"
)

// Address syntax. MSSanté mandates no local-part syntax (docs/domain.md §2); we
// accept the RFC 5322 §3.4.1 dot-atom form for the local part and an
// RFC 1035 host name (LDH labels, IDNA A-labels) for the domain, and refuse
// the rarely used forms that complicate every comparison and log line:
// quoted local parts ("a b"@x), domain literals (x@[192.0.2.1]), comments,
// and non-ASCII (SMTPUTF8, RFC 6531: international names must be given in
// their xn-- form). Lengths follow RFC 5321 §4.5.3.1: local part ≤ 64,
// domain ≤ 255 (253 without the root dot), path ≤ 256 with the brackets,
// so address ≤ 254.

const (
	maxLocalLen   = 64
	maxDomainLen  = 253
	maxAddressLen = 254
	maxLabelLen   = 63
)

// ParseAddress checks the syntax of local@domain and returns the address in
// canonical form (lower case). The error is a *refusal.Error of kind
// refusal.InvalidAddress whose text says what is wrong.
func ParseAddress(s string) (string, error) {
	bad := func(reason string) error {
		return refuse(refusal.InvalidAddress, s, "The address %q is not valid: %s.", truncate(s, 80), reason)
	}
	if s == "" {
		return "", bad("it is empty")
	}
	if len(s) > maxAddressLen {
		return "", bad("it is longer than 254 characters")
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", bad("it has no @")
	}
	if strings.IndexByte(s[at+1:], '@') >= 0 {
		return "", bad("it has more than one @")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != "" {
		return "", bad(err)
	}
	if err := checkDomain(domain); err != "" {
		return "", bad(err)
	}
	return strings.ToLower(s), nil
}

// checkLocal returns why local is not a dot-atom, or "".
func checkLocal(local string) string {
	switch {
	case local == "":
		return "the part before @ is empty"
	case len(local) > maxLocalLen:
		return "the part before @ is longer than 64 characters"
	case local[0] == '"':
		return "quoted local parts are not accepted"
	case local[0] == '.' || local[len(local)-1] == '.':
		return "the part before @ cannot start or end with a dot"
	case strings.Contains(local, ".."):
		return "the part before @ cannot contain two dots in a row"
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !isAtext(c) && c != '.' {
			return describeBadChar(c) + " is not allowed before @"
		}
	}
	return ""
}

// isAtext reports whether c is an RFC 5322 §3.2.3 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkDomain returns why domain is not a host name, or "".
func checkDomain(domain string) string {
	switch {
	case domain == "":
		return "the domain after @ is empty"
	case len(domain) > maxDomainLen:
		return "the domain is longer than 253 characters"
	case domain[0] == '[':
		return "domain literals such as [192.0.2.1] are not accepted"
	}
	for _, label := range strings.Split(domain, ".") {
		if why := checkLabel(label); why != "" {
			return why
		}
	}
	return ""
}

// checkLabel checks one RFC 1035 §2.3.1 label (letters, digits, hyphens,
// not starting or ending with a hyphen; RFC 1123 §2.1 allows a leading
// digit).
func checkLabel(label string) string {
	switch {
	case label == "":
		return "the domain has an empty label (two dots in a row, or a dot at the start or end)"
	case len(label) > maxLabelLen:
		return "a label of the domain is longer than 63 characters"
	case label[0] == '-' || label[len(label)-1] == '-':
		return "a label of the domain starts or ends with a hyphen"
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return describeBadChar(c) + " is not allowed in the domain"
		}
	}
	return ""
}

func describeBadChar(c byte) string {
	switch {
	case c == ' ' || c == '\t':
		return "a space"
	case c >= 0x80:
		return "a non-ASCII character (write international domains in their xn-- form)"
	case c < 0x20 || c == 0x7f:
		return "a control character"
	}
	return fmt.Sprintf("the character %q", c)
}

// ParseDomain checks a domain name and returns it in lower case.
func ParseDomain(s string) (string, error) {
	if why := checkDomain(s); why != "" {
		return "", refuse(refusal.InvalidAddress, s, "The domain %q is not valid: %s.", truncate(s, 80), why)
	}
	return strings.ToLower(s), nil
}

// SplitAddress returns the local part and the domain of a canonical address.
func SplitAddress(addr string) (local, domain string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}
