package directory

import "strings"

// FoldSearch prepares text for the directory search: lower case, French
// (and common Latin) accents removed, runs of spaces collapsed, so that
// "helene" finds "Hélène" and "COEUR" finds "cœur". Every Store backend
// folds both the stored columns and the query with it, so that all backends
// answer the same.
func FoldSearch(s string) string {
	s = strings.ToLower(s)
	s = ligatures.Replace(s)
	s = strings.Map(func(r rune) rune {
		if f, ok := accentFold[r]; ok {
			return f
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

var ligatures = strings.NewReplacer("œ", "oe", "æ", "ae", "ß", "ss")

var accentFold = func() map[rune]rune {
	m := map[rune]rune{}
	for base, accented := range map[rune]string{
		'a': "àáâãäåā",
		'c': "çćč",
		'e': "èéêëēėę",
		'i': "ìíîïī",
		'n': "ñń",
		'o': "òóôõöøō",
		'u': "ùúûüū",
		'y': "ýÿ",
		's': "śš",
		'z': "źżž",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()
