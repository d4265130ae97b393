package directory

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Identifiers of the French health system (docs/domain.md §2).
//
//   - RPPS: 11 digits, the last a Luhn check digit (the same key as SIREN
//     and credit cards).
//   - ADELI: 9 digits (2 for the département, 1 for the profession, a serial
//     number and a final key). No public source we could find states the key
//     algorithm reliably (the one public example (docs/domain.md §2) happens to pass Luhn, which
//     proves nothing), so only the format is checked: refusing a real
//     professional because of a guessed rule would be worse than accepting
//     a mistyped number that the operator then fails to find.
//   - Identification nationale PP: "8" + RPPS or "0" + ADELI.
//   - INS (matricule INS = NIR): 13 characters + a 2-digit key
//     97 − (NIR mod 97); Corsican births carry 2A/2B as département, counted
//     as 19/18 in the key.

// IDType says which register a professional's number comes from.
type IDType string

const (
	IDRPPS  IDType = "RPPS"
	IDADELI IDType = "ADELI"
)

// ErrInvalidIdentifier is wrapped by every *IdentifierError.
var ErrInvalidIdentifier = errors.New("invalid identifier")

// IdentifierError says precisely what is wrong with an identifier, in a
// sentence fit for an administrator or a client.
type IdentifierError struct {
	Kind   string // "RPPS", "ADELI", "national identifier", "INS", "profession code", "specialty code"
	Value  string
	Reason string
}

func (e *IdentifierError) Error() string {
	return fmt.Sprintf("The %s %q is invalid: %s.", e.Kind, truncate(e.Value, 40), e.Reason)
}
func (e *IdentifierError) Unwrap() error { return ErrInvalidIdentifier }

func idErr(kind, value, format string, args ...any) error {
	return &IdentifierError{Kind: kind, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// truncate keeps error texts short whatever the input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkDigits returns an error naming the first character that is not an
// ASCII digit, or the wrong length.
func checkDigits(kind, s string, n int) error {
	if len(s) != n {
		return idErr(kind, s, "it must have exactly %d digits, it has %d characters", n, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return idErr(kind, s, "character %d (%q) is not a digit", i+1, s[i])
		}
	}
	return nil
}

// luhnValid reports whether the digit string s (already checked) passes the
// Luhn algorithm: from the right, every second digit is doubled (minus 9 if
// over 9) and the sum must be a multiple of 10.
func luhnValid(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// LuhnComplete appends to digits the Luhn key that makes them valid: from
// the first 10 digits of an RPPS number, the number (test data, load tools).
func LuhnComplete(digits string) string {
	for k := byte('0'); k <= '9'; k++ {
		if luhnValid(digits + string(k)) {
			return digits + string(k)
		}
	}
	return digits // not digits: no key makes it valid
}

// ValidateRPPS checks an 11-digit RPPS number and its Luhn key.
func ValidateRPPS(s string) error {
	if err := checkDigits("RPPS number", s, 11); err != nil {
		return err
	}
	if !luhnValid(s) {
		return idErr("RPPS number", s, "its last digit is not the right check key (Luhn): a digit is probably mistyped")
	}
	return nil
}

// ValidateADELI checks the format of a 9-digit ADELI number (see the
// package note above: the key is not checked).
func ValidateADELI(s string) error {
	return checkDigits("ADELI number", s, 9)
}

// ParseNationalID reads an identification nationale PP: "8" + RPPS (12
// digits) or "0" + ADELI (10 digits). It returns the type and the bare RPPS
// or ADELI number.
func ParseNationalID(s string) (IDType, string, error) {
	const kind = "national identifier"
	if s == "" {
		return "", "", idErr(kind, s, "it is empty; expected 8 followed by the 11-digit RPPS, or 0 followed by the 9-digit ADELI")
	}
	switch s[0] {
	case '8':
		if len(s) != 12 {
			return "", "", idErr(kind, s, "an identifier starting with 8 is 8 + the RPPS number, 12 digits in all, it has %d characters", len(s))
		}
		if err := ValidateRPPS(s[1:]); err != nil {
			return "", "", idErr(kind, s, "after the leading 8, %s", innerReason(err))
		}
		return IDRPPS, s[1:], nil
	case '0':
		if len(s) != 10 {
			return "", "", idErr(kind, s, "an identifier starting with 0 is 0 + the ADELI number, 10 digits in all, it has %d characters", len(s))
		}
		if err := ValidateADELI(s[1:]); err != nil {
			return "", "", idErr(kind, s, "after the leading 0, %s", innerReason(err))
		}
		return IDADELI, s[1:], nil
	default:
		return "", "", idErr(kind, s, "it must start with 8 (RPPS) or 0 (ADELI), not %q", s[0])
	}
}

// innerReason rewords an error about the inner number for the outer one.
func innerReason(err error) string {
	var ie *IdentifierError
	if errors.As(err, &ie) {
		return fmt.Sprintf("the %s %q is wrong: %s", ie.Kind, ie.Value, ie.Reason)
	}
	return err.Error()
}

// ProfessionalNationalID accepts what an administrator is likely to type —
// the national form (8+RPPS, 0+ADELI) or a bare RPPS (11 digits) or ADELI
// (9 digits) — and returns the national form. Lengths do not overlap (12,
// 10, 11, 9), so there is no ambiguity.
func ProfessionalNationalID(s string) (string, error) {
	switch len(s) {
	case 11:
		if err := ValidateRPPS(s); err != nil {
			return "", err
		}
		return "8" + s, nil
	case 9:
		if err := ValidateADELI(s); err != nil {
			return "", err
		}
		return "0" + s, nil
	case 12, 10:
		if _, _, err := ParseNationalID(s); err != nil {
			return "", err
		}
		return s, nil
	}
	return "", idErr("professional identifier", s,
		"expected an RPPS number (11 digits), an ADELI number (9 digits) or the national form (8 + RPPS, 0 + ADELI), it has %d characters", len(s))
}

// ParseINS checks a matricule INS (NIR + key, 15 characters) and returns it
// in canonical form (Corsican "2a"/"2b" upper-cased).
//
// Layout: sex (1 digit: 1/2, or 3/4/7/8 for temporary and foreign-born
// numbers), year (2), month (2), département (2, "2A"/"2B" for Corsica),
// commune (3), order (3), key (2).
func ParseINS(s string) (string, error) {
	const kind = "INS"
	if len(s) != 15 {
		return "", idErr(kind, s, "it must have 15 characters (13 for the NIR and 2 for the key), it has %d", len(s))
	}
	up := strings.ToUpper(s)
	switch up[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return "", idErr(kind, s, "its first digit must be 1 or 2 (or 3, 4, 7, 8 for temporary and foreign-born numbers), not %q", s[0])
	}
	// The value used for the key: the département 2A counts as 19, 2B as 18.
	digits := []byte(up[:13])
	for i := 0; i < 15; i++ {
		c := up[i]
		if c >= '0' && c <= '9' {
			continue
		}
		if i == 6 && up[5] == '2' && (c == 'A' || c == 'B') {
			digits[5] = '1'
			digits[6] = '9'
			if c == 'B' {
				digits[6] = '8'
			}
			continue
		}
		return "", idErr(kind, s, "character %d (%q) is not a digit (only the Corsican départements 2A and 2B, in positions 6-7, contain letters)", i+1, s[i])
	}
	var n uint64
	for _, c := range digits {
		n = n*10 + uint64(c-'0')
	}
	want := 97 - n%97
	got := uint64(up[13]-'0')*10 + uint64(up[14]-'0')
	if got != want {
		return "", idErr(kind, s, "its key %02d does not match the number (expected %02d): a digit is probably mistyped", got, want)
	}
	return up, nil
}

// Professions of the national nomenclature TRE_G15 ProfessionSante (OID
// 1.2.250.1.71.1.2.7), without the codes deprecated in 2024 (35–39, 93).
var Professions = map[string]string{
	"10": "Médecin",
	"21": "Pharmacien",
	"26": "Audioprothésiste",
	"28": "Opticien-Lunetier",
	"31": "Assistant dentaire",
	"32": "Physicien médical",
	"40": "Chirurgien-Dentiste",
	"50": "Sage-Femme",
	"60": "Infirmier",
	"69": "Infirmier psychiatrique",
	"70": "Masseur-Kinésithérapeute",
	"80": "Pédicure-Podologue",
	"81": "Orthoprothésiste",
	"82": "Podo-Orthésiste",
	"83": "Orthopédiste-Orthésiste",
	"84": "Oculariste",
	"85": "Epithésiste",
	"86": "Technicien de laboratoire médical",
	"91": "Orthophoniste",
	"92": "Orthoptiste",
	"94": "Ergothérapeute",
	"95": "Diététicien",
	"96": "Psychomotricien",
	"98": "Manipulateur ERM",
}

// professionList is the sorted "10 (Médecin), 21 (Pharmacien), …" text
// shown when a code is refused.
var professionList = func() string {
	codes := make([]string, 0, len(Professions))
	for c := range Professions {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for i, c := range codes {
		codes[i] = c + " (" + Professions[c] + ")"
	}
	return strings.Join(codes, ", ")
}()

// ValidateProfession checks a TRE_G15 profession code.
func ValidateProfession(code string) error {
	if _, ok := Professions[code]; !ok {
		return idErr("profession code", code, "it is not in the TRE_G15 nomenclature; valid codes are %s", professionList)
	}
	return nil
}

// Specialties are the labels of the TRE_R38 SpecialiteOrdinale codes
// (OID 1.2.250.1.213.2.28) this project has a source for (docs/domain.md §2).
// The nomenclature is long and changes often: a code missing here is still
// accepted (ValidateSpecialty checks the shape only) and shown without a
// label.
var Specialties = map[string]string{
	"SM26": "Qualifié en médecine générale",
	"SM53": "Spécialiste en médecine générale",
	"SM54": "Médecine générale",
	"SM59": "Médecine d'urgence",
}

// ProfessionLabel returns "10 (Médecin)" for a known TRE_G15 code, the
// code alone otherwise ("" for "").
func ProfessionLabel(code string) string { return labelled(code, Professions) }

// SpecialtyLabel returns "SM54 (Médecine générale)" for a TRE_R38 code
// with a known label, the code alone otherwise.
func SpecialtyLabel(code string) string { return labelled(code, Specialties) }

func labelled(code string, labels map[string]string) string {
	if l, ok := labels[code]; ok {
		return code + " (" + l + ")"
	}
	return code
}

// ValidateSpecialty loosely checks the shape of a TRE_R38 specialty code
// (SM54, SCD01, SI03…): 1 to 4 upper-case letters then 1 to 3 digits. The
// list itself changes often and is not enforced. It returns the code upper-
// cased.
func ValidateSpecialty(code string) (string, error) {
	up := strings.ToUpper(code)
	i := 0
	for i < len(up) && up[i] >= 'A' && up[i] <= 'Z' {
		i++
	}
	letters, digits := i, len(up)-i
	for ; i < len(up); i++ {
		if up[i] < '0' || up[i] > '9' {
			return "", idErr("specialty code", code, "expected letters then digits, like SM54, SCD01 or SI03")
		}
	}
	if letters < 1 || letters > 4 || digits < 1 || digits > 3 {
		return "", idErr("specialty code", code, "expected 1 to 4 letters then 1 to 3 digits, like SM54, SCD01 or SI03")
	}
	return up, nil
}
