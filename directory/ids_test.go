package directory

import (
	"errors"
	"strings"
	"testing"
)

func TestParseNationalIDExamples(t *testing.T) {
	// docs/domain.md §2: 10001045367 → 810001045367, 012600631 → 0012600631.
	for _, tc := range []struct {
		in   string
		typ  IDType
		bare string
	}{
		{"810001045367", IDRPPS, "10001045367"},
		{"0012600631", IDADELI, "012600631"},
	} {
		typ, bare, err := ParseNationalID(tc.in)
		if err != nil || typ != tc.typ || bare != tc.bare {
			t.Errorf("ParseNationalID(%q) = %s, %q, %v; want %s, %q", tc.in, typ, bare, err, tc.typ, tc.bare)
		}
	}
	if err := ValidateRPPS("10001045367"); err != nil {
		t.Error(err)
	}
	if err := ValidateADELI("012600631"); err != nil {
		t.Error(err)
	}
	for in, want := range map[string]string{
		"10001045367":  "810001045367",
		"012600631":    "0012600631",
		"810001045367": "810001045367",
		"0012600631":   "0012600631",
	} {
		if got, err := ProfessionalNationalID(in); err != nil || got != want {
			t.Errorf("ProfessionalNationalID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseNationalIDErrors(t *testing.T) {
	for _, tc := range []struct {
		in, wantText string
	}{
		{"", "it is empty"},
		{"910001045367", "must start with 8 (RPPS) or 0 (ADELI)"},
		{"81000104536", "12 digits in all, it has 11 characters"},
		{"8100010453670", "12 digits in all, it has 13 characters"},
		{"012600631", "10 digits in all, it has 9 characters"},
		{"81000104536x", `character 11 ('x') is not a digit`},
		{"0012a00631", `character 4 ('a') is not a digit`},
		{"810001045368", "check key (Luhn)"},
		{"810001045376", "check key (Luhn)"}, // two digits swapped
	} {
		_, _, err := ParseNationalID(tc.in)
		if err == nil {
			t.Errorf("ParseNationalID(%q) accepted", tc.in)
			continue
		}
		if !errors.Is(err, ErrInvalidIdentifier) || !strings.Contains(err.Error(), tc.wantText) {
			t.Errorf("ParseNationalID(%q) = %v; want an ErrInvalidIdentifier saying %q", tc.in, err, tc.wantText)
		}
	}
	for in, want := range map[string]string{
		"1000104536":   "must start with 8 (RPPS) or 0 (ADELI)",
		"10001045368":  "Luhn",
		"1000104536a":  "not a digit",
		"01260063":     "expected an RPPS number (11 digits), an ADELI number (9 digits)",
		"12345678901x": "must start with 8",
		"0012600631x":  "character 11 ('x') is not a digit",
	} {
		if _, err := ProfessionalNationalID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ProfessionalNationalID(%q) = %v; want an error saying %q", in, err, want)
		}
	}
}

func TestParseINS(t *testing.T) {
	for in, want := range map[string]string{
		"279035121518989": "279035121518989", // docs/domain.md §2 example
		"185069912345623": "185069912345623",
		"185062A12345649": "185062A12345649", // Corsica: 2A counts as 19
		"185062a12345649": "185062A12345649",
		"185062B12345676": "185062B12345676", // 2B counts as 18
		"385069912345620": "385069912345620", // temporary number
		"785069912345614": "785069912345614", // foreign-born
	} {
		if got, err := ParseINS(in); err != nil || got != want {
			t.Errorf("ParseINS(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":                 "15 characters",
		"27903512151898":   "15 characters",
		"2790351215189890": "15 characters",
		"579035121518989":  "first digit must be 1 or 2",
		"27903512151898x":  `character 15 ('x') is not a digit`,
		"2790A5121518989":  `character 5 ('A') is not a digit`,
		"185062C12345649":  `character 7 ('C')`,
		"1850A2A12345649":  `character 5`,
		"279035121518988":  "key 88 does not match the number (expected 89)",
		"185062A12345676":  "expected 49",
		"185062B12345649":  "expected 76",
	} {
		_, err := ParseINS(in)
		if err == nil || !errors.Is(err, ErrInvalidIdentifier) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseINS(%q) = %v; want an error saying %q", in, err, want)
		}
	}
}

func TestProfession(t *testing.T) {
	for _, c := range []string{"10", "21", "40", "50", "60", "70", "98"} {
		if err := ValidateProfession(c); err != nil {
			t.Errorf("ValidateProfession(%s): %v", c, err)
		}
	}
	for _, c := range []string{"", "11", "35", "93", "1O", "100"} {
		err := ValidateProfession(c)
		if err == nil || !strings.Contains(err.Error(), "10 (Médecin), 21 (Pharmacien)") ||
			!strings.Contains(err.Error(), "98 (Manipulateur ERM)") {
			t.Errorf("ValidateProfession(%q) = %v; want the list of valid codes", c, err)
		}
	}
}

func TestSpecialty(t *testing.T) {
	for in, want := range map[string]string{"SM54": "SM54", "sm26": "SM26", "SCD01": "SCD01", "SI03": "SI03", "S1": "S1"} {
		if got, err := ValidateSpecialty(in); err != nil || got != want {
			t.Errorf("ValidateSpecialty(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "54", "SM", "SM5A", "SMXYZ01", "SM1234", "SM 54", "É1"} {
		if _, err := ValidateSpecialty(in); err == nil {
			t.Errorf("ValidateSpecialty(%q) accepted", in)
		}
	}
}

func TestLuhn(t *testing.T) {
	// Every single-digit change of a valid number is caught.
	const good = "10001045367"
	for i := range len(good) {
		for d := byte('0'); d <= '9'; d++ {
			if d == good[i] {
				continue
			}
			b := []byte(good)
			b[i] = d
			if luhnValid(string(b)) {
				t.Errorf("Luhn accepted %s", b)
			}
		}
	}
}

func FuzzParseNationalID(f *testing.F) {
	for _, s := range []string{"810001045367", "0012600631", "", "8", "0", "9123", "81000104536x", "0012600631\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, bare, err := ParseNationalID(s)
		if err != nil {
			var ie *IdentifierError
			if !errors.As(err, &ie) || err.Error() == "" {
				t.Fatalf("error %v is not an *IdentifierError", err)
			}
			return
		}
		switch typ {
		case IDRPPS:
			if s != "8"+bare || ValidateRPPS(bare) != nil {
				t.Fatalf("%q → RPPS %q", s, bare)
			}
		case IDADELI:
			if s != "0"+bare || ValidateADELI(bare) != nil {
				t.Fatalf("%q → ADELI %q", s, bare)
			}
		default:
			t.Fatalf("%q → unknown type %q", s, typ)
		}
		// The national form is a fixed point of ProfessionalNationalID.
		if got, err := ProfessionalNationalID(s); err != nil || got != s {
			t.Fatalf("ProfessionalNationalID(%q) = %q, %v", s, got, err)
		}
	})
}

func FuzzParseINS(f *testing.F) {
	for _, s := range []string{"279035121518989", "185062A12345649", "185062b12345676", "", "2A", "27903512151898\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseINS(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidIdentifier) {
				t.Fatalf("error %v does not wrap ErrInvalidIdentifier", err)
			}
			return
		}
		if len(got) != 15 || !strings.EqualFold(got, s) {
			t.Fatalf("ParseINS(%q) = %q", s, got)
		}
		// Canonical form is stable.
		if again, err := ParseINS(got); err != nil || again != got {
			t.Fatalf("ParseINS(%q) = %q, %v", got, again, err)
		}
	})
}
