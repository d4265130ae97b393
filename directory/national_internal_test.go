package directory

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNationalHeaders(t *testing.T) {
	if len(PSLibreAccesHeader) != 52 || len(MSSanteHeader) != 31 {
		t.Fatalf("headers: %d and %d columns", len(PSLibreAccesHeader), len(MSSanteHeader))
	}
	// Every column read is in the documented header.
	for _, c := range NationalColumns(FormatPSLibreAcces) {
		found := false
		for _, h := range PSLibreAccesHeader {
			found = found || h == c
		}
		if !found {
			t.Errorf("PS column %q is not in the header", c)
		}
	}
}

func psParser(t testing.TB) *lineParser {
	p, err := newLineParser(FormatPSLibreAcces, strings.Join(PSLibreAccesHeader, "|")+"|\r\n")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func msParser(t testing.TB) *lineParser {
	p, err := newLineParser(FormatMSSante, "\ufeff"+strings.Join(MSSanteHeader, "|"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// psLine builds a line of PS_LibreAcces from column values.
func psLine(vals map[string]string) string {
	f := make([]string, len(PSLibreAccesHeader)+1)
	for i, h := range PSLibreAccesHeader {
		f[i] = vals[h]
	}
	return strings.Join(f, "|")
}

func TestParsePSLine(t *testing.T) {
	p := psParser(t)
	rpps := LuhnComplete("1000104536")
	n, err := p.parsePerson(psLine(map[string]string{"Identification nationale PP": "8" + rpps, "Nom d'exercice": " DUPONT ",
		"Prénom d'exercice": "Hélène", "Code profession": "10", "Code savoir-faire": "SM54", "Numéro SIRET site": "12345678900017",
		"Raison sociale site": "CABINET", "Libellé commune (coord. structure)": "LYON", "Code postal (coord. structure)": "69003",
		"Code mode exercice": "L"}) + "\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if n.NationalID != "8"+rpps || n.LastName != "DUPONT" || n.ProfessionLabel != "Médecin" || n.SpecialtyLabel != "Médecine générale" ||
		len(n.Places) != 1 || n.Places[0] != (PracticePlace{StructureID: "12345678900017", Organisation: "CABINET", Mode: "L", PostCode: "69003", City: "LYON"}) {
		t.Errorf("parsed: %+v", n)
	}
	for _, bad := range []struct{ line, reason string }{
		{"8|1|2", "fields instead of 53"},
		{psLine(map[string]string{"Identification nationale PP": "81234", "Nom d'exercice": "X", "Code profession": "10"}), "national identifier"},
		{psLine(map[string]string{"Identification nationale PP": "8" + rpps, "Code profession": "10"}), "no last name"},
		{psLine(map[string]string{"Identification nationale PP": "8" + rpps, "Nom d'exercice": "X"}), "no profession"},
	} {
		if _, err := p.parsePerson(bad.line); err == nil || !strings.Contains(err.Error(), bad.reason) {
			t.Errorf("%.40q: %v, want %q", bad.line, err, bad.reason)
		}
	}
}

func TestParseMSSanteLine(t *testing.T) {
	p := msParser(t)
	f := make([]string, len(MSSanteHeader))
	set := func(col, v string) {
		for i, h := range MSSanteHeader {
			if h == col {
				f[i] = v
			}
		}
	}
	set("Type de BAL", "per")
	set("Adresse BAL", "Helene.Dupont@CHU-Lyon.mssante.fr")
	set("L6LIGNEACHEMINEMENT structure BAL", "69003 LYON")
	set("Enseigne commerciale structure BAL", "HCL")
	m, err := p.parseMailbox(strings.Join(f, "|"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Address != "helene.dupont@chu-lyon.mssante.fr" || m.Kind != KindPersonal || m.City != "LYON" || m.PostCode != "69003" || m.Organisation != "HCL" {
		t.Errorf("parsed: %+v", m)
	}
	set("Adresse BAL", "no-at-sign")
	if _, err := p.parseMailbox(strings.Join(f, "|")); err == nil || !strings.Contains(err.Error(), "no @") {
		t.Errorf("bad address: %v", err)
	}
}

func TestNationalHeaderMissing(t *testing.T) {
	h := strings.Replace(strings.Join(MSSanteHeader, "|"), "Adresse BAL", "Adresse", 1)
	_, err := newLineParser(FormatMSSante, h)
	if err == nil || !strings.Contains(err.Error(), `"Adresse BAL"`) {
		t.Errorf("missing column: %v", err)
	}
	// Case and accents of the names do not matter (Latin-1 files read
	// as such, or headers retyped).
	if _, err := newLineParser(FormatMSSante, strings.ToUpper(FoldSearch(strings.Join(MSSanteHeader, "|")))); err != nil {
		t.Errorf("folded header: %v", err)
	}
}

func TestDecodeLine(t *testing.T) {
	if s, l1 := decodeLine([]byte("Hélène")); s != "Hélène" || l1 {
		t.Errorf("utf-8: %q %v", s, l1)
	}
	if s, l1 := decodeLine([]byte{'H', 0xe9, 'l', 0xe8, 'n', 'e'}); s != "Hélène" || !l1 {
		t.Errorf("latin-1: %q %v", s, l1)
	}
}

func TestSearchStems(t *testing.T) {
	for in, want := range map[string]string{"cardiologue": "cardiolog", "cardiologie": "cardiolog", "pediatre": "pediatr",
		"psychiatrie": "psychiatr", "anesthesiste": "anesthesi", "chirurgien": "chirurgi", "lyon": "lyon", "logue": "logue"} {
		if got := SearchStems(in); got != want {
			t.Errorf("SearchStems(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParsePSLine: any line parses or is refused with a reason, never a
// panic; what parses has a valid national identifier and a last name.
func FuzzParsePSLine(f *testing.F) {
	f.Add(psLine(map[string]string{"Identification nationale PP": "810001045367", "Nom d'exercice": "DUPONT", "Code profession": "10"}))
	f.Add("8|10001045367|810001045367|")
	f.Add(strings.Repeat("|", 52))
	p := psParser(f)
	f.Fuzz(func(t *testing.T, line string) {
		line, _ = decodeLine([]byte(line))
		n, err := p.parsePerson(line)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty reason")
			}
			return
		}
		if _, _, err := ParseNationalID(n.NationalID); err != nil || n.LastName == "" || !utf8.ValidString(n.LastName) {
			t.Fatalf("accepted %+v", n)
		}
	})
}

// FuzzParseMSSanteLine: likewise for the MSSanté extraction.
func FuzzParseMSSanteLine(f *testing.F) {
	f.Add("PER|a@b.mssante.fr|8|10001045367|810001045367|1|1690781810||Docteur|DUPONT|Jean|||10|Médecin|SM54||O|CHU||||||||69003 LYON|69003|69|FRANCE")
	f.Add("ORG|x@y|" + strings.Repeat("|", 28))
	p := msParser(f)
	f.Fuzz(func(t *testing.T, line string) {
		line, _ = decodeLine([]byte(line))
		m, err := p.parseMailbox(line)
		if err != nil {
			return
		}
		if _, err := ParseAddress(m.Address); err != nil || m.Kind == "" {
			t.Fatalf("accepted %+v", m)
		}
	})
}
