package directory

import (
	"strings"
	"testing"

	"github.com/carepost/carepost/refusal"
)

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Jean.Dupont@CH-X.mssante.fr":        "jean.dupont@ch-x.mssante.fr",
		"279035121518989@patient.mssante.fr": "279035121518989@patient.mssante.fr",
		"a+tag@x.fr":                         "a+tag@x.fr",
		"o'brien@x.fr":                       "o'brien@x.fr",
		"x@localhost":                        "x@localhost",
		"x@123.example":                      "x@123.example",
		strings.Repeat("a", 64) + "@x.fr":    strings.Repeat("a", 64) + "@x.fr",
	} {
		got, err := ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	long := strings.Repeat("a", 63)
	for in, want := range map[string]string{
		"":                                     "it is empty",
		"jean.dupont":                          "no @",
		"a@b@c.fr":                             "more than one @",
		"@x.fr":                                "before @ is empty",
		"a@":                                   "after @ is empty",
		"jean dupont@x.fr":                     "a space",
		" jean@x.fr":                           "a space",
		"jean@x.fr ":                           "a space",
		`"jean dupont"@x.fr`:                   "quoted local parts",
		".jean@x.fr":                           "start or end with a dot",
		"jean.@x.fr":                           "start or end with a dot",
		"je..an@x.fr":                          "two dots",
		"jean(comment)@x.fr":                   `the character '('`,
		"jean@[192.0.2.1]":                     "domain literals",
		"jean@x..fr":                           "empty label",
		"jean@x.fr.":                           "empty label",
		"jean@-x.fr":                           "hyphen",
		"jean@x_y.fr":                          `the character '_'`,
		"jean@hôpital.fr":                      "xn-- form",
		"jéan@x.fr":                            "non-ASCII",
		"jean\r\n@x.fr":                        "control character",
		strings.Repeat("a", 65) + "@x.fr":      "longer than 64",
		"a@" + strings.Repeat("b", 64) + ".fr": "longer than 63",
		"a@" + long + "." + long + "." + long + "." + long: "longer than 254",
	} {
		_, err := ParseAddress(in)
		if err == nil || !refusal.Is(err, refusal.InvalidAddress) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddress(%q) = %v; want an InvalidAddress refusal saying %q", in, err, want)
		}
	}
}

func TestParseDomain(t *testing.T) {
	if d, err := ParseDomain("CH-B.MSSante.fr"); err != nil || d != "ch-b.mssante.fr" {
		t.Errorf("ParseDomain = %q, %v", d, err)
	}
	long := strings.Repeat("a", 63)
	if _, err := ParseDomain(long + "." + long + "." + long + "." + long); err == nil || !strings.Contains(err.Error(), "longer than 253") {
		t.Errorf("ParseDomain(255 characters) = %v", err)
	}
	for _, in := range []string{"", "a..b", "a b.fr", "-a.fr", "[1.2.3.4]", "é.fr"} {
		if _, err := ParseDomain(in); err == nil {
			t.Errorf("ParseDomain(%q) accepted", in)
		}
	}
}

func TestFoldSearch(t *testing.T) {
	for in, want := range map[string]string{
		"Hélène  MARTIN":  "helene martin",
		"Cœur Ærien":      "coeur aerien",
		"François Gérôme": "francois gerome",
		"  ":              "",
	} {
		if got := FoldSearch(in); got != want {
			t.Errorf("FoldSearch(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"jean.dupont@ch-x.mssante.fr", "a@b", `"q"@x.fr`, "a@[1.2.3.4]", "a@@b", "", "é@x.fr", "a@x..fr"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAddress(s)
		if err != nil {
			if !refusal.Is(err, refusal.InvalidAddress) {
				t.Fatalf("error %v is not an InvalidAddress refusal", err)
			}
			return
		}
		if got != strings.ToLower(s) || !strings.EqualFold(got, s) {
			t.Fatalf("ParseAddress(%q) = %q", s, got)
		}
		// What was accepted is plain printable ASCII with exactly one @,
		// and parsing is idempotent.
		for i := 0; i < len(got); i++ {
			if got[i] <= ' ' || got[i] >= 0x7f {
				t.Fatalf("accepted byte %q in %q", got[i], got)
			}
		}
		if strings.Count(got, "@") != 1 || len(got) > 254 {
			t.Fatalf("accepted %q", got)
		}
		if again, err := ParseAddress(got); err != nil || again != got {
			t.Fatalf("ParseAddress(%q) = %q, %v", got, again, err)
		}
		local, domain := SplitAddress(got)
		if local+"@"+domain != got {
			t.Fatalf("SplitAddress(%q) = %q, %q", got, local, domain)
		}
	})
}
