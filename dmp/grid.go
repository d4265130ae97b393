package dmp

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/carepost/carepost/directory"
)

// The authorization grid (SPEC §7, docs/dmp.md "Authorization grid and
// patient controls"): which profession (TRE_G15, optionally narrowed to a
// specialty, TRE_R38) may deposit and read which document type (LOINC
// typeCode), after the DMP's "matrice d'habilitation" (profession ×
// document type, https://www.dmp.fr/matrice-habilitation) and the access
// rules of docs/domain.md §5:
//
//   - the patient reads every document of their own record except those
//     flagged INVISIBLE_PATIENT (not yet shown to them);
//   - MASQUE_PS hides a document from professionals, except its author
//     and the patient's médecin traitant;
//   - a professional the patient blocked reads nothing, except the
//     médecin traitant, who cannot be blocked;
//   - an emergency ("bris de glace") read passes the blocks and the masks
//     when the patient left emergency access on; it is always audited
//     (dmp.emergency) and shown in the patient's history. It never passes
//     the grid itself: a profession that may not read a type does not read
//     it in an emergency either.
//
// The grid is a TOML file (deploy/dmp-grid.toml; its canonical copy,
// embedded in the binary, is dmp/grid.toml and a test keeps the two
// identical) that an operator may replace ([dmp] grid).

//go:embed grid.toml
var defaultGridFile []byte

// Any is the wildcard of a grid's type lists: every document type.
const Any = "*"

// Grid is a loaded authorization grid. It is immutable and safe for
// concurrent use.
type Grid struct {
	// Source names where it was read from ("embedded default" or the
	// file's path), for messages.
	Source string
	rules  map[ruleKey]*rule
	types  map[string]string // LOINC code → label
	// patientDeposit and softwareDeposit: what the patient (portal: "my
	// documents") and an applicative mailbox may deposit.
	patientDeposit, softwareDeposit typeSet
}

type ruleKey struct{ profession, specialty string }

type rule struct {
	deposit, read typeSet
}

// typeSet is a set of LOINC codes, or every code.
type typeSet struct {
	any   bool
	codes map[string]bool
}

func (s typeSet) has(code string) bool { return s.any || s.codes[code] }

// gridFile is the TOML layout of a grid.
type gridFile struct {
	Types           map[string]string `toml:"types"`
	PatientDeposit  []string          `toml:"patient_deposit"`
	SoftwareDeposit []string          `toml:"software_deposit"`
	Rules           []gridFileRule    `toml:"rule"`
}

type gridFileRule struct {
	Profession string   `toml:"profession"`
	Specialty  string   `toml:"specialty"`
	Deposit    []string `toml:"deposit"`
	Read       []string `toml:"read"`
}

// LoadGrid reads a grid file; every mistake in it is named in the error
// (a key it does not know, a profession outside TRE_G15, a malformed
// LOINC code, two rules for one profession and specialty).
func LoadGrid(path string) (*Grid, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("DMP authorization grid: %w", err)
	}
	g, err := ParseGrid(b)
	if err != nil {
		return nil, fmt.Errorf("DMP authorization grid %s: %w", path, err)
	}
	g.Source = path
	return g, nil
}

// DefaultGrid returns the grid shipped with Carepost (deploy/dmp-grid.toml).
func DefaultGrid() *Grid {
	g, err := ParseGrid(defaultGridFile)
	if err != nil {
		panic("dmp: the embedded grid is invalid: " + err.Error())
	}
	g.Source = "embedded default"
	return g
}

// DefaultGridFile returns the text of the default grid, for an operator
// to start from.
func DefaultGridFile() []byte { return slices.Clone(defaultGridFile) }

// ParseGrid reads the text of a grid file.
func ParseGrid(text []byte) (*Grid, error) {
	var f gridFile
	md, err := toml.Decode(string(text), &f)
	if err != nil {
		return nil, err
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("unknown keys: %s (a grid has [types], patient_deposit, software_deposit and [[rule]] tables of profession, specialty, deposit and read)", strings.Join(keys, ", "))
	}
	g := &Grid{rules: make(map[ruleKey]*rule), types: make(map[string]string)}
	var errs []error
	for code, label := range f.Types {
		if !validLOINC(code) {
			errs = append(errs, fmt.Errorf("[types]: %q is not a LOINC code (digits, a dash, a check digit: 11488-4)", code))
			continue
		}
		g.types[code] = label
	}
	if g.patientDeposit, err = parseTypes(f.PatientDeposit); err != nil {
		errs = append(errs, fmt.Errorf("patient_deposit: %w", err))
	}
	if g.softwareDeposit, err = parseTypes(f.SoftwareDeposit); err != nil {
		errs = append(errs, fmt.Errorf("software_deposit: %w", err))
	}
	for i, r := range f.Rules {
		where := fmt.Sprintf("rule %d", i+1)
		if err := directory.ValidateProfession(r.Profession); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		k := ruleKey{profession: r.Profession}
		if r.Specialty != "" {
			sp, err := directory.ValidateSpecialty(r.Specialty)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			k.specialty = sp
		}
		if _, dup := g.rules[k]; dup {
			errs = append(errs, fmt.Errorf("%s: a second rule for profession %s%s; merge them", where, r.Profession, specialtyText(k.specialty)))
			continue
		}
		var nr rule
		if nr.deposit, err = parseTypes(r.Deposit); err != nil {
			errs = append(errs, fmt.Errorf("%s, deposit: %w", where, err))
		}
		if nr.read, err = parseTypes(r.Read); err != nil {
			errs = append(errs, fmt.Errorf("%s, read: %w", where, err))
		}
		g.rules[k] = &nr
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

func specialtyText(sp string) string {
	if sp == "" {
		return ""
	}
	return " and specialty " + sp
}

func parseTypes(list []string) (typeSet, error) {
	s := typeSet{codes: make(map[string]bool, len(list))}
	for _, c := range list {
		c = strings.TrimSpace(c)
		switch {
		case c == Any:
			s.any = true
		case validLOINC(c):
			s.codes[c] = true
		default:
			return s, fmt.Errorf("%q is neither a LOINC code (like 11488-4) nor %q", c, Any)
		}
	}
	return s, nil
}

// validLOINC checks the shape of a LOINC code: 1 to 7 digits, a dash and
// the check digit (LOINC's mod 10 algorithm is not checked: a typo then
// matches no document, which the grid's tests show).
func validLOINC(c string) bool {
	num, check, ok := strings.Cut(c, "-")
	if !ok || len(num) < 1 || len(num) > 7 || len(check) != 1 {
		return false
	}
	for _, r := range num + check {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// TypeLabel is the label the grid gives a LOINC code, "" if none.
func (g *Grid) TypeLabel(code string) string { return g.types[code] }

// Types returns the LOINC codes the grid names, sorted.
func (g *Grid) Types() []string {
	out := make([]string, 0, len(g.types))
	for c := range g.types {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// ruleFor is the rule of a profession and specialty: the one naming the
// specialty when there is one, else the profession's.
func (g *Grid) ruleFor(profession, specialty string) *rule {
	if specialty != "" {
		if r := g.rules[ruleKey{profession, strings.ToUpper(specialty)}]; r != nil {
			return r
		}
	}
	return g.rules[ruleKey{profession: profession}]
}

// typeText names a document's type in a sentence: "11488-4 (Compte rendu
// de consultation)".
func (g *Grid) typeText(c Code) string {
	label := c.Display
	if l := g.types[c.Code]; l != "" {
		label = l
	}
	if label == "" {
		return c.Code
	}
	return c.Code + " (" + label + ")"
}

func professionText(profession, specialty string) string {
	if profession == "" {
		return "a mailbox without a profession"
	}
	s := "profession " + directory.ProfessionLabel(profession)
	if specialty != "" {
		s += ", specialty " + directory.SpecialtyLabel(specialty)
	}
	return s
}

// MayDeposit says whether by may deposit doc under the grid, and if not
// why, in a sentence for the sender. It looks at the document's type and
// the depositor's profession only; MayDepositFor adds the patient's
// blocks.
func (g *Grid) MayDeposit(by Depositor, doc *Document) (ok bool, reason string) {
	tc := doc.TypeCode
	if tc.Code == "" {
		return false, "The document has no type code (typeCode, a LOINC code): the authorization grid decides on it."
	}
	switch {
	case by.Patient != "":
		if by.Patient != doc.PatientINS {
			return false, "A patient may only add documents to their own record."
		}
		if !g.patientDeposit.has(tc.Code) {
			return false, fmt.Sprintf("A patient may not add documents of type %s to their record under the authorization grid.", g.typeText(tc))
		}
		return true, ""
	case by.Software:
		if !g.softwareDeposit.has(tc.Code) {
			return false, fmt.Sprintf("An applicative mailbox may not deposit documents of type %s under the authorization grid.", g.typeText(tc))
		}
		return true, ""
	}
	r := g.ruleFor(by.Profession, by.Specialty)
	if r == nil {
		return false, fmt.Sprintf("The authorization grid gives %s no right to deposit documents.", professionText(by.Profession, by.Specialty))
	}
	if !r.deposit.has(tc.Code) {
		return false, fmt.Sprintf("The authorization grid does not allow %s to deposit documents of type %s.", professionText(by.Profession, by.Specialty), g.typeText(tc))
	}
	return true, ""
}

// MayDepositFor is MayDeposit, and the patient's blocks: a professional
// the patient blocked deposits nothing, unless they are the patient's
// médecin traitant.
func (g *Grid) MayDepositFor(by Depositor, doc *Document, ctl PatientControls) (ok bool, reason string) {
	if ok, reason := g.MayDeposit(by, doc); !ok {
		return false, reason
	}
	if by.NationalID != "" && ctl.IsBlocked(by.NationalID) {
		return false, "The patient has blocked this professional's access to their record."
	}
	return true, ""
}

// Decision is the grid's answer to a read.
type Decision struct {
	Allowed bool
	// Reason says why not, in a sentence for the reader; for an allowed
	// emergency read, that it is one.
	Reason string
	// Emergency: allowed only as an emergency ("bris de glace") read,
	// past a block or a mask; the caller records dmp.emergency.
	Emergency bool
	// Hidden: the reader may not even learn that the document exists
	// (MASQUE_PS for a professional, INVISIBLE_PATIENT for the patient,
	// another patient's document): an API answers as for an unknown
	// document. A refusal by type or by block is not hidden.
	Hidden bool
}

// MayRead says whether r may read doc of the record whose controls are
// ctl, and if not why (Decide tells more).
func (g *Grid) MayRead(r Reader, doc *StoredDocument, ctl PatientControls) (ok bool, reason string) {
	d := g.Decide(r, doc, ctl)
	return d.Allowed, d.Reason
}

// Decide applies the grid, the visibility flags and the patient's
// controls to a read of doc by r (see the rules at the top of this file).
func (g *Grid) Decide(r Reader, doc *StoredDocument, ctl PatientControls) Decision {
	ins := doc.PatientINS
	if ins == "" {
		ins = doc.Document.PatientINS
	}
	vis := doc.Document.Visibility
	if r.Patient != "" {
		switch {
		case r.Patient != ins:
			return Decision{Reason: "A patient reads only their own record.", Hidden: true}
		case vis&InvisiblePatient != 0:
			return Decision{Reason: "This document is not yet visible to the patient.", Hidden: true}
		}
		return Decision{Allowed: true}
	}
	if r.NationalID == "" && r.Profession == "" {
		return Decision{Reason: "Only a health professional identified in the directory, or the patient, reads a record."}
	}
	author := isAuthor(r, doc)
	traitant := ctl.MedecinTraitant != "" && r.NationalID == ctl.MedecinTraitant
	if !author {
		rl := g.ruleFor(r.Profession, r.Specialty)
		tc := doc.Document.TypeCode
		if rl == nil {
			return Decision{Reason: fmt.Sprintf("The authorization grid gives %s no right to read documents.", professionText(r.Profession, r.Specialty))}
		}
		if tc.Code == "" || !rl.read.has(tc.Code) {
			return Decision{Reason: fmt.Sprintf("The authorization grid does not allow %s to read documents of type %s.", professionText(r.Profession, r.Specialty), g.typeText(tc))}
		}
	}
	emergency := false
	if !traitant && r.NationalID != "" && ctl.IsBlocked(r.NationalID) {
		if d, ok := emergencyPass(r, ctl, "The patient has blocked your access to their record."); !ok {
			return d
		}
		emergency = true
	}
	if vis&HiddenFromProfessionals != 0 && !author && !traitant {
		if d, ok := emergencyPass(r, ctl, "This document is hidden from professionals (MASQUE_PS)."); !ok {
			d.Hidden = true
			return d
		}
		emergency = true
	}
	if emergency {
		return Decision{Allowed: true, Emergency: true, Reason: "Emergency access (bris de glace): this read is recorded and shown to the patient."}
	}
	return Decision{Allowed: true}
}

// emergencyPass: a refusal for why, unless r asks for an emergency read
// and the patient allows them.
func emergencyPass(r Reader, ctl PatientControls, why string) (Decision, bool) {
	switch {
	case !r.Emergency:
		return Decision{Reason: why}, false
	case !ctl.Emergency:
		return Decision{Reason: why + " The patient has turned emergency access off."}, false
	}
	return Decision{}, true
}

// isAuthor: r wrote doc (one of its authors' identifiers) or deposited it.
func isAuthor(r Reader, doc *StoredDocument) bool {
	if r.Address != "" && strings.EqualFold(r.Address, doc.DepositedBy) {
		return true
	}
	if r.NationalID == "" {
		return false
	}
	for _, a := range doc.Document.Authors {
		if a.PersonID == r.NationalID {
			return true
		}
	}
	return false
}

// IsBlocked says whether the patient blocked the professional of national
// identifier id; the médecin traitant never is (docs/domain.md §5).
func (c PatientControls) IsBlocked(id string) bool {
	if id == "" || id == c.MedecinTraitant {
		return false
	}
	return slices.Contains(c.Blocked, id)
}
