package directory

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The national directory (issue #27): the public extraction files of the
// national directory of health professionals (PS_LibreAcces, file
// Personne_activite) and of the secure-messaging addresses
// (Extraction_Correspondance_MSSante), imported by `carepost dir import`
// (import.go) and searched with the mailboxes hosted here (listing.go).
// The columns read are described in docs/domain.md §4 and the README
// ("The national directory"). The national records are not mailboxes of
// this server: they live beside the entries, in their own tables, and an
// import never touches an Entry.

// NationalFormat names an extraction file's format.
type NationalFormat string

const (
	// FormatPSLibreAcces is PS_LibreAcces_Personne_activite: one
	// activity of a professional a line (a professional with two practice
	// places has two lines), 52 columns and a trailing "|".
	FormatPSLibreAcces NationalFormat = "ps-libreacces"
	// FormatMSSante is Extraction_Correspondance_MSSante: one
	// secure-messaging address a line, 31 columns.
	FormatMSSante NationalFormat = "mssante"
)

// ParseNationalFormat reads a --format value.
func ParseNationalFormat(s string) (NationalFormat, error) {
	switch f := NationalFormat(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatPSLibreAcces, FormatMSSante:
		return f, nil
	}
	return "", invalid(s, "Unknown format %q: use ps-libreacces (PS_LibreAcces Personne_activite) or mssante (Extraction_Correspondance_MSSante).", s)
}

// PracticePlace is one place where a professional practises (one line of
// Personne_activite).
type PracticePlace struct {
	// StructureID is the site's FINESS, else its SIRET, else the
	// structure's technical identifier.
	StructureID  string
	Organisation string // Raison sociale site, else Enseigne commerciale site
	Mode         string // L libéral, S salarié, B bénévole
	PostCode     string
	City         string
}

// NationalPerson is a professional of the national directory
// (PS_LibreAcces).
type NationalPerson struct {
	NationalID      string // 8+RPPS or 0+ADELI
	Civility        string // Libellé civilité d'exercice (Docteur, Madame…)
	LastName        string
	FirstName       string
	Profession      string // TRE_G15 code
	ProfessionLabel string // as the file says it (else the TRE_G15 label)
	Specialty       string // TRE_R38 code (savoir-faire)
	SpecialtyLabel  string
	Places          []PracticePlace
}

// NationalMailbox is a secure-messaging address of the national directory
// (Extraction_Correspondance_MSSante), with what the line says of its
// holder; a search completes it with the holder's NationalPerson.
type NationalMailbox struct {
	Address         string // lower case
	Kind            Kind   // PER, ORG, APP, CAB
	NationalID      string // of the holder of a PER mailbox, "" otherwise
	StructureID     string // Identification Structure
	Service         string // Service de rattachement
	LastName        string
	FirstName       string
	Profession      string
	ProfessionLabel string
	Specialty       string
	SpecialtyLabel  string
	Organisation    string // Raison Sociale (else Enseigne commerciale) structure BAL
	PostCode        string
	City            string
}

// NationalBatch is a run of parsed records handed to the store.
type NationalBatch struct {
	People    []NationalPerson
	Mailboxes []NationalMailbox
}

// NationalCounts is what an import changed.
type NationalCounts struct {
	// Records is the number of distinct records of the file (a
	// professional's several lines count once, an address given twice
	// once).
	Records   int
	Added     int
	Changed   int
	Closed    int // in the directory before, absent from the file: status closed, kept
	Reopened  int // closed before, in the file again
	Unchanged int
}

// NationalStore keeps the national directory. It is implemented by the
// storage backends beside the rest of Store.
type NationalStore interface {
	// ImportNational replaces the set of records of format (people for
	// PS_LibreAcces, mailboxes for MSSanté) with those next returns, in
	// one transaction: records absent from the batches are closed (status
	// closed, closed_at set, the row kept), closed records present again
	// are reopened, the others added or updated; the first/last-seen
	// times are at. next returns io.EOF after the last batch; any other
	// error (or ctx's) rolls everything back and is returned.
	ImportNational(ctx context.Context, format NationalFormat, at time.Time, next func() (NationalBatch, error)) (NationalCounts, error)
	// SearchNational returns the national listings matching q, at most
	// limit, ordered by ListingSortKey, starting at the offset-th. The
	// backend answers with an index (never a scan of the whole
	// directory) for every condition of q.
	SearchNational(ctx context.Context, q ListingQuery, offset, limit int) ([]Listing, error)
}

// ListingSortKey is the order of listings: last name, first name (folded
// with FoldSearch), then address, then national identifier (a
// professional with no secure-messaging address has no address). Backends
// store it with each national record so that they can page in that order.
func ListingSortKey(l Listing) string {
	return FoldSearch(l.LastName) + "\x00" + FoldSearch(l.FirstName) + "\x00" + l.Address + "\x00" + l.NationalID
}

// SearchStems widens a folded search word to what it means in the
// directory's labels: the labels of the national nomenclatures name the
// discipline ("Cardiologie et maladies vasculaires", "Pédiatrie",
// "Psychiatrie", "Anesthésie-réanimation", "Chirurgie…") while people type
// the practitioner ("cardiologue", "pédiatre", "psychiatre",
// "anesthésiste", "chirurgien"). Each word is cut to the stem both share,
// searched as a prefix: "cardiologue" → "cardiolog" finds "cardiologie"
// and "cardiologue". The rules are French suffix pairs, applied only to
// words long enough that the stem stays specific (≥ 5 letters).
func SearchStems(word string) string {
	for _, r := range stemRules {
		if strings.HasSuffix(word, r.suffix) && len(word)-len(r.suffix)+len(r.keep) >= 5 {
			return strings.TrimSuffix(word, r.suffix) + r.keep
		}
	}
	return word
}

var stemRules = []struct{ suffix, keep string }{
	{"logues", "log"}, {"logue", "log"}, {"logie", "log"}, // cardiologue, cardiologie
	{"iatres", "iatr"}, {"iatre", "iatr"}, {"iatrie", "iatr"}, // pédiatre, pédiatrie
	{"esistes", "esi"}, {"esiste", "esi"}, {"esie", "esi"}, // anesthésiste, anesthésie
	{"urgiens", "urgi"}, {"urgien", "urgi"}, {"urgie", "urgi"}, // chirurgien, chirurgie
	{"ologistes", "olog"}, {"ologiste", "olog"}, // stomatologiste
}

// decodeLine returns line as UTF-8: itself when it is valid UTF-8, else
// read as Latin-1 (ISO 8859-1, one byte a rune: the older extractions),
// and whether it was. A line is tested alone, so a file that mixes both
// (concatenated extractions) is read right.
func decodeLine(line []byte) (string, bool) {
	if utf8.Valid(line) {
		return string(line), false
	}
	var b strings.Builder
	b.Grow(len(line) + len(line)/8)
	for _, c := range line {
		b.WriteRune(rune(c))
	}
	return b.String(), true
}

// nationalColumns are the columns of a format that the import reads: name
// in the header (compared folded) → field of the parsed line. The files
// have more; the others are ignored.
type columnSpec struct {
	// total is the number of columns of the format (the header's
	// length, without the trailing empty field of PS_LibreAcces).
	total int
	names []string // the columns read, in the order of the col* constants
}

// The columns read from PS_LibreAcces Personne_activite.
const (
	psIdentification = iota
	psCivility
	psLastName
	psFirstName
	psProfession
	psProfessionLabel
	psSpecialty
	psSpecialtyLabel
	psMode
	psSIRET
	psFINESS
	psStructureTech
	psName
	psBrand
	psPostCode
	psCity
	psCount
)

var psColumns = columnSpec{total: 52, names: []string{
	psIdentification:  "Identification nationale PP",
	psCivility:        "Libellé civilité d'exercice",
	psLastName:        "Nom d'exercice",
	psFirstName:       "Prénom d'exercice",
	psProfession:      "Code profession",
	psProfessionLabel: "Libellé profession",
	psSpecialty:       "Code savoir-faire",
	psSpecialtyLabel:  "Libellé savoir-faire",
	psMode:            "Code mode exercice",
	psSIRET:           "Numéro SIRET site",
	psFINESS:          "Numéro FINESS site",
	psStructureTech:   "Identifiant technique de la structure",
	psName:            "Raison sociale site",
	psBrand:           "Enseigne commerciale site",
	psPostCode:        "Code postal (coord. structure)",
	psCity:            "Libellé commune (coord. structure)",
}}

// The columns read from Extraction_Correspondance_MSSante.
const (
	msKind = iota
	msAddress
	msIdentification
	msStructure
	msService
	msLastName
	msFirstName
	msProfession
	msProfessionLabel
	msSpecialty
	msSpecialtyLabel
	msName
	msBrand
	msL6
	msPostCode
	msCount
)

var msColumns = columnSpec{total: 31, names: []string{
	msKind:            "Type de BAL",
	msAddress:         "Adresse BAL",
	msIdentification:  "Identification nationale PP",
	msStructure:       "Identification Structure",
	msService:         "Service de rattachement",
	msLastName:        "Nom d'exercice",
	msFirstName:       "Prénom d'exercice",
	msProfession:      "Code Profession",
	msProfessionLabel: "Libellé Profession",
	msSpecialty:       "Code savoir-faire",
	msSpecialtyLabel:  "Libellé savoir-faire",
	msName:            "Raison Sociale structure BAL",
	msBrand:           "Enseigne commerciale structure BAL",
	msL6:              "L6LIGNEACHEMINEMENT structure BAL",
	msPostCode:        "Code postal structure BAL",
}}

// NationalColumns lists the columns the import reads from a format, as
// the header names them (the README lists them too).
func NationalColumns(f NationalFormat) []string {
	if f == FormatMSSante {
		return append([]string(nil), msColumns.names...)
	}
	return append([]string(nil), psColumns.names...)
}

// lineParser parses the lines of one file once its header is read.
type lineParser struct {
	format NationalFormat
	spec   columnSpec
	// idx[i] is the position of column spec.names[i] in a line.
	idx []int
	// fields is the number of fields of a well-formed line (with the
	// trailing empty one of PS_LibreAcces).
	fields int
	// trailing: the header ended with "|", so every line must.
	trailing bool
	buf      []string
}

// splitFields splits a line on "|" into buf, reused.
func splitFields(buf []string, line string) []string {
	buf = buf[:0]
	for {
		i := strings.IndexByte(line, '|')
		if i < 0 {
			return append(buf, line)
		}
		buf = append(buf, line[:i])
		line = line[i+1:]
	}
}

// foldHeader compares header names whatever their case, accents and
// spacing (an older file in Latin-1, a BOM).
func foldHeader(s string) string {
	return FoldSearch(strings.TrimPrefix(strings.TrimSpace(s), "\ufeff"))
}

// newLineParser checks the header line of a file of format f: every
// column read must be named there. The error names the missing ones.
func newLineParser(f NationalFormat, header string) (*lineParser, error) {
	spec := psColumns
	if f == FormatMSSante {
		spec = msColumns
	}
	header = strings.TrimRight(header, "\r\n")
	p := &lineParser{format: f, spec: spec}
	cols := splitFields(nil, header)
	if len(cols) > 1 && strings.TrimSpace(cols[len(cols)-1]) == "" {
		p.trailing = true
	}
	p.fields = len(cols)
	pos := map[string]int{}
	for i, c := range cols {
		if _, dup := pos[foldHeader(c)]; !dup {
			pos[foldHeader(c)] = i
		}
	}
	var missing []string
	p.idx = make([]int, len(spec.names))
	for i, name := range spec.names {
		j, ok := pos[foldHeader(name)]
		if !ok {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
		p.idx[i] = j
	}
	if len(missing) > 0 {
		what := "a " + string(f) + " extraction"
		return nil, fmt.Errorf("the header line is not that of %s (%d columns expected): the columns %s are missing", what, spec.total, strings.Join(missing, ", "))
	}
	return p, nil
}

// field returns column i of the current line, trimmed.
func (p *lineParser) field(i int) string { return strings.TrimSpace(p.buf[p.idx[i]]) }

// split checks the number of fields of line.
func (p *lineParser) split(line string) error {
	line = strings.TrimRight(line, "\r\n")
	p.buf = splitFields(p.buf, line)
	if len(p.buf) != p.fields {
		return fmt.Errorf("%d fields instead of %d (a \"|\" missing or in excess)", len(p.buf), p.fields)
	}
	return nil
}

// ParsePSLine parses one line of PS_LibreAcces Personne_activite.
func (p *lineParser) parsePerson(line string) (NationalPerson, error) {
	if err := p.split(line); err != nil {
		return NationalPerson{}, err
	}
	n := NationalPerson{
		NationalID: p.field(psIdentification), Civility: p.field(psCivility),
		LastName: p.field(psLastName), FirstName: p.field(psFirstName),
		Profession: p.field(psProfession), ProfessionLabel: p.field(psProfessionLabel),
		Specialty: p.field(psSpecialty), SpecialtyLabel: p.field(psSpecialtyLabel),
	}
	if _, _, err := ParseNationalID(n.NationalID); err != nil {
		return n, err
	}
	if n.LastName == "" {
		return n, fmt.Errorf("no last name (column %q)", psColumns.names[psLastName])
	}
	if n.Profession == "" {
		return n, fmt.Errorf("no profession code (column %q)", psColumns.names[psProfession])
	}
	if n.ProfessionLabel == "" {
		n.ProfessionLabel = Professions[n.Profession]
	}
	if n.SpecialtyLabel == "" {
		n.SpecialtyLabel = Specialties[n.Specialty]
	}
	pl := PracticePlace{StructureID: p.field(psFINESS), Organisation: p.field(psName), Mode: p.field(psMode),
		PostCode: p.field(psPostCode), City: p.field(psCity)}
	if pl.StructureID == "" {
		pl.StructureID = p.field(psSIRET)
	}
	if pl.StructureID == "" {
		pl.StructureID = p.field(psStructureTech)
	}
	if pl.Organisation == "" {
		pl.Organisation = p.field(psBrand)
	}
	if pl != (PracticePlace{}) {
		n.Places = []PracticePlace{pl}
	}
	return n, nil
}

// parseMailbox parses one line of Extraction_Correspondance_MSSante.
func (p *lineParser) parseMailbox(line string) (NationalMailbox, error) {
	if err := p.split(line); err != nil {
		return NationalMailbox{}, err
	}
	m := NationalMailbox{
		Address: strings.ToLower(p.field(msAddress)), Kind: Kind(strings.ToUpper(p.field(msKind))),
		NationalID: p.field(msIdentification), StructureID: p.field(msStructure), Service: p.field(msService),
		LastName: p.field(msLastName), FirstName: p.field(msFirstName),
		Profession: p.field(msProfession), ProfessionLabel: p.field(msProfessionLabel),
		Specialty: p.field(msSpecialty), SpecialtyLabel: p.field(msSpecialtyLabel),
		Organisation: p.field(msName), PostCode: p.field(msPostCode),
	}
	switch m.Kind {
	case KindPersonal, KindOrganisational, KindApplicative, KindPractice:
	default:
		return m, fmt.Errorf("unknown mailbox type %q (column %q: PER, ORG, APP or CAB)", truncate(p.field(msKind), 20), msColumns.names[msKind])
	}
	if _, err := ParseAddress(m.Address); err != nil {
		return m, err
	}
	if m.NationalID != "" {
		if _, _, err := ParseNationalID(m.NationalID); err != nil {
			return m, err
		}
	}
	if m.Organisation == "" {
		m.Organisation = p.field(msBrand)
	}
	if m.ProfessionLabel == "" {
		m.ProfessionLabel = Professions[m.Profession]
	}
	if m.SpecialtyLabel == "" {
		m.SpecialtyLabel = Specialties[m.Specialty]
	}
	// L6 "ligne d'acheminement" is "69003 LYON" (postcode then town,
	// or "LYON CEDEX 03").
	l6 := p.field(msL6)
	if pc, town, ok := strings.Cut(l6, " "); ok && len(pc) == 5 && isDigits(pc) {
		if m.PostCode == "" {
			m.PostCode = pc
		}
		l6 = strings.TrimSpace(town)
	}
	m.City = l6
	return m, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// PSLibreAccesHeader is the header of PS_LibreAcces_Personne_activite
// (52 columns; each line ends with a "|" after the last), as documented
// in docs/domain.md §4. The import needs only the columns of
// NationalColumns, wherever they are.
var PSLibreAccesHeader = func() []string {
	h := []string{"Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
		"Code civilité d'exercice", "Libellé civilité d'exercice", "Code civilité", "Libellé civilité",
		"Nom d'exercice", "Prénom d'exercice", "Code profession", "Libellé profession",
		"Code catégorie professionnelle", "Libellé catégorie professionnelle",
		"Code type savoir-faire", "Libellé type savoir-faire", "Code savoir-faire", "Libellé savoir-faire",
		"Code mode exercice", "Libellé mode exercice", "Numéro SIRET site", "Numéro SIREN site",
		"Numéro FINESS site", "Numéro FINESS établissement juridique", "Identifiant technique de la structure",
		"Raison sociale site", "Enseigne commerciale site"}
	for _, c := range []string{"Complément destinataire", "Complément point géographique", "Numéro Voie",
		"Indice répétition voie", "Code type de voie", "Libellé type de voie", "Libellé Voie",
		"Mention distribution", "Bureau cedex", "Code postal", "Code commune", "Libellé commune",
		"Code pays", "Libellé pays", "Téléphone", "Téléphone 2", "Télécopie", "Adresse e-mail"} {
		h = append(h, c+" (coord. structure)")
	}
	return append(h, "Code Département (structure)", "Libellé Département (structure)",
		"Ancien identifiant de la structure", "Autorité d'enregistrement", "Code secteur d'activité",
		"Libellé secteur d'activité", "Code section tableau pharmaciens", "Libellé section tableau pharmaciens")
}()

// MSSanteHeader is the header of Extraction_Correspondance_MSSante (31
// columns), as documented in docs/domain.md §4.
var MSSanteHeader = []string{"Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
	"Identification nationale PP", "Type identifiant structure", "Identification Structure",
	"Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
	"Catégorie profession", "Libellé de catégorie profession", "Code Profession", "Libellé Profession",
	"Code savoir-faire", "Libellé savoir-faire", "Dématérialisation", "Raison Sociale structure BAL",
	"Enseigne commerciale structure BAL", "L2COMPLEMENTLOCALISATION structure BAL",
	"L3COMPLEMENTDISTRIBUTION structure BAL", "L4NUMEROVOIE structure BAL",
	"L4COMPLEMENTNUMEROVOIE structure BAL", "NL4TYPEVOIE structure BAL", "L4LIBELLEVOIE structure BAL",
	"L5LIEUDITMENTION structure BAL", "L6LIGNEACHEMINEMENT structure BAL", "Code postal structure BAL",
	"Département structure BAL", "Pays structure BAL"}
