package dmp

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The grid shipped in deploy/ is the one embedded in the binary.
func TestGridDeployCopy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "dmp-grid.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, defaultGridFile) {
		t.Fatal("deploy/dmp-grid.toml differs from dmp/grid.toml: copy dmp/grid.toml (the embedded default) to deploy/dmp-grid.toml")
	}
	g, err := LoadGrid(filepath.Join("..", "deploy", "dmp-grid.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if g.TypeLabel("11490-0") == "" || len(g.Types()) < 6 {
		t.Fatalf("types: %v", g.Types())
	}
}

const (
	testINS      = "255081416802538"
	gpID         = "810001234567"
	traitantID   = "810009999999"
	pharmacistID = "810002222222"
	nurseID      = "000123456789"
	authorID     = "810003333333"
)

var (
	gp         = Reader{Address: "gp@cab.test", NationalID: gpID, Profession: "10", Specialty: "SM54"}
	traitant   = Reader{Address: "mt@cab.test", NationalID: traitantID, Profession: "10"}
	pharmacist = Reader{Address: "ph@officine.test", NationalID: pharmacistID, Profession: "21"}
	nurse      = Reader{Address: "ide@cab.test", NationalID: nurseID, Profession: "60"}
	patient    = Reader{Address: testINS + "@patient.test", Patient: testINS}
)

func storedDoc(typeCode string, vis Visibility) *StoredDocument {
	return &StoredDocument{ID: "d1", PatientINS: testINS, DepositedBy: "author@ch.test",
		Document: Document{PatientINS: testINS, TypeCode: Code{Code: typeCode}, Visibility: vis,
			Authors: []Author{{PersonID: authorID}}}}
}

func TestGridRead(t *testing.T) {
	g := DefaultGrid()
	ctl := DefaultControls(testINS)
	ctl.MedecinTraitant = traitantID
	author := Reader{Address: "author@ch.test", NationalID: authorID, Profession: "60"}
	other := Reader{Address: "other@ch.test", NationalID: "810004444444", Profession: "10"}
	for _, c := range []struct {
		name   string
		r      Reader
		doc    *StoredDocument
		ctl    PatientControls
		ok     bool
		hidden bool
		emerg  bool
		reason string
	}{
		{name: "GP reads a lab report", r: gp, doc: storedDoc("11502-2", 0), ctl: ctl, ok: true},
		{name: "pharmacist reads a lab report", r: pharmacist, doc: storedDoc("11502-2", 0), ctl: ctl, ok: true},
		{name: "pharmacist refused a consultation note", r: pharmacist, doc: storedDoc("11488-4", 0), ctl: ctl,
			reason: "does not allow profession 21 (Pharmacien) to read documents of type 11488-4 (Compte rendu de consultation)"},
		{name: "nurse refused imaging", r: nurse, doc: storedDoc("18748-4", 0), ctl: ctl, reason: "18748-4"},
		{name: "no rule for the profession", r: Reader{NationalID: "810005555555", Profession: "26"}, doc: storedDoc("11502-2", 0), ctl: ctl,
			reason: "no right to read"},
		{name: "the author reads past the grid", r: author, doc: storedDoc("18748-4", 0), ctl: ctl, ok: true},
		{name: "MASQUE_PS hidden from another professional", r: other, doc: storedDoc("11502-2", HiddenFromProfessionals), ctl: ctl,
			hidden: true, reason: "MASQUE_PS"},
		{name: "MASQUE_PS shown to the médecin traitant", r: traitant, doc: storedDoc("11502-2", HiddenFromProfessionals), ctl: ctl, ok: true},
		{name: "MASQUE_PS shown to the author", r: author, doc: storedDoc("34746-8", HiddenFromProfessionals), ctl: ctl, ok: true},
		{name: "MASQUE_PS shown to the patient", r: patient, doc: storedDoc("11502-2", HiddenFromProfessionals), ctl: ctl, ok: true},
		{name: "INVISIBLE_PATIENT hidden from the patient", r: patient, doc: storedDoc("11502-2", InvisiblePatient), ctl: ctl,
			hidden: true, reason: "not yet visible"},
		{name: "INVISIBLE_PATIENT shown to a professional", r: gp, doc: storedDoc("11502-2", InvisiblePatient), ctl: ctl, ok: true},
		{name: "another patient", r: Reader{Patient: "168127512345648"}, doc: storedDoc("11502-2", 0), ctl: ctl, hidden: true},
		{name: "nobody", r: Reader{Address: "app@x.test"}, doc: storedDoc("11502-2", 0), ctl: ctl, reason: "Only a health professional"},
	} {
		d := g.Decide(c.r, c.doc, c.ctl)
		if d.Allowed != c.ok || d.Hidden != c.hidden || d.Emergency != c.emerg || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %+v", c.name, d)
		}
		if ok, reason := g.MayRead(c.r, c.doc, c.ctl); ok != d.Allowed || reason != d.Reason {
			t.Errorf("%s: MayRead %v %q, Decide %+v", c.name, ok, reason, d)
		}
	}
}

func TestGridBlocksAndEmergency(t *testing.T) {
	g := DefaultGrid()
	ctl := PatientControls{INS: testINS, Blocked: []string{gpID, traitantID}, Emergency: true, MedecinTraitant: traitantID}
	doc := storedDoc("11502-2", 0)
	masked := storedDoc("11502-2", HiddenFromProfessionals)

	if d := g.Decide(gp, doc, ctl); d.Allowed || d.Hidden || !strings.Contains(d.Reason, "blocked") {
		t.Errorf("blocked GP: %+v", d)
	}
	// The médecin traitant is never blocked.
	if d := g.Decide(traitant, doc, ctl); !d.Allowed || d.Emergency {
		t.Errorf("blocked médecin traitant: %+v", d)
	}
	if ctl.IsBlocked(traitantID) || !ctl.IsBlocked(gpID) || ctl.IsBlocked("") {
		t.Error("IsBlocked")
	}
	// Emergency: past the block and the mask while the patient allows it.
	eg := gp
	eg.Emergency = true
	if d := g.Decide(eg, doc, ctl); !d.Allowed || !d.Emergency || !strings.Contains(d.Reason, "recorded") {
		t.Errorf("emergency read of a blocked GP: %+v", d)
	}
	if d := g.Decide(eg, masked, ctl); !d.Allowed || !d.Emergency {
		t.Errorf("emergency read of a masked document: %+v", d)
	}
	// An emergency that is not needed is an ordinary read.
	en := nurse
	en.Emergency = true
	if d := g.Decide(en, doc, ctl); !d.Allowed || d.Emergency {
		t.Errorf("emergency flag without need: %+v", d)
	}
	// Never past the grid.
	ep := pharmacist
	ep.Emergency = true
	if d := g.Decide(ep, storedDoc("11488-4", 0), ctl); d.Allowed {
		t.Errorf("emergency past the grid: %+v", d)
	}
	// Emergency access turned off by the patient.
	off := ctl
	off.Emergency = false
	if d := g.Decide(eg, doc, off); d.Allowed || !strings.Contains(d.Reason, "turned emergency access off") {
		t.Errorf("emergency read with emergency access off: %+v", d)
	}
	if d := g.Decide(eg, masked, off); d.Allowed {
		t.Errorf("emergency read of a masked document, access off: %+v", d)
	}
}

func TestGridDeposit(t *testing.T) {
	g := DefaultGrid()
	doc := func(tc string) *Document { return &Document{PatientINS: testINS, TypeCode: Code{Code: tc}} }
	gpDep := Depositor{Address: "gp@cab.test", NationalID: gpID, Profession: "10"}
	phDep := Depositor{Address: "ph@officine.test", NationalID: pharmacistID, Profession: "21"}
	for _, c := range []struct {
		name   string
		by     Depositor
		doc    *Document
		ok     bool
		reason string
	}{
		{"GP deposits a discharge letter", gpDep, doc("11490-0"), true, ""},
		{"pharmacist deposits a dispensation", phDep, doc("60593-1"), true, ""},
		{"pharmacist refused a lab report", phDep, doc("11502-2"), false, "to deposit documents of type 11502-2"},
		{"no type code", gpDep, doc(""), false, "no type code"},
		{"no rule", Depositor{Profession: "95"}, doc("11502-2"), false, "no right to deposit"},
		{"software", Depositor{Address: "dpi@ch.test", Software: true}, doc("11502-2"), true, ""},
		{"the patient, own record", Depositor{Patient: testINS}, doc("11488-4"), true, ""},
		{"the patient, another record", Depositor{Patient: "168127512345648"}, doc("11488-4"), false, "own record"},
	} {
		ok, reason := g.MayDeposit(c.by, c.doc)
		if ok != c.ok || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: %v %q", c.name, ok, reason)
		}
	}
	ctl := PatientControls{INS: testINS, Blocked: []string{gpID}}
	if ok, reason := g.MayDepositFor(gpDep, doc("11490-0"), ctl); ok || !strings.Contains(reason, "blocked") {
		t.Errorf("blocked depositor: %v %q", ok, reason)
	}
	ctl.MedecinTraitant = gpID
	if ok, _ := g.MayDepositFor(gpDep, doc("11490-0"), ctl); !ok {
		t.Error("the médecin traitant is never blocked from depositing")
	}
}

// A rule naming a specialty replaces the profession's rule for it.
func TestGridSpecialty(t *testing.T) {
	g, err := ParseGrid([]byte(`
[[rule]]
profession = "21"
read = ["57833-6"]
deposit = []

[[rule]]
profession = "21"
specialty = "sp01"
read = ["57833-6", "11502-2"]
deposit = ["11502-2"]
`))
	if err != nil {
		t.Fatal(err)
	}
	bio := Reader{NationalID: pharmacistID, Profession: "21", Specialty: "SP01"}
	if ok, _ := g.MayRead(bio, storedDoc("11502-2", 0), DefaultControls(testINS)); !ok {
		t.Error("the specialty's rule")
	}
	if ok, _ := g.MayRead(pharmacist, storedDoc("11502-2", 0), DefaultControls(testINS)); ok {
		t.Error("the profession's rule")
	}
	if ok, _ := g.MayDeposit(Depositor{Profession: "21", Specialty: "SP01"}, &Document{TypeCode: Code{Code: "11502-2"}}); !ok {
		t.Error("deposit under the specialty's rule")
	}
}

func TestGridErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`[[rule]]` + "\nprofession = \"99\"\nread = [\"*\"]", "TRE_G15"},
		{`[[rule]]` + "\nprofession = \"10\"\nread = [\"consultation\"]", `"consultation" is neither a LOINC code`},
		{`[[rule]]` + "\nprofession = \"10\"\nspecialty = \"médecine\"", "specialty code"},
		{"[[rule]]\nprofession = \"10\"\n[[rule]]\nprofession = \"10\"", "a second rule for profession 10"},
		{"[[rule]]\nprofession = \"10\"\nwrite = [\"*\"]", "unknown keys: rule.write"},
		{"patient_deposit = [\"1-2-3\"]", "patient_deposit"},
		{"[types]\n\"abc\" = \"x\"", "[types]"},
		{"[[rule]\n", "toml"},
	} {
		_, err := ParseGrid([]byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	if _, err := LoadGrid(filepath.Join(t.TempDir(), "none.toml")); err == nil || !strings.Contains(err.Error(), "DMP authorization grid") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "g.toml")
	os.WriteFile(p, []byte("[[rule]]\nprofession = \"21\"\nread = [\"11502-2\"]\n"), 0o600)
	g, err := LoadGrid(p)
	if err != nil || g.Source != p {
		t.Fatalf("LoadGrid: %v", err)
	}
}

// FuzzParseGrid: any text is a grid or an error, never a panic; a grid
// answers any question.
func FuzzParseGrid(f *testing.F) {
	f.Add(DefaultGridFile())
	f.Add([]byte("[[rule]]\nprofession = \"21\"\nspecialty = \"SP01\"\nread = [\"11502-2\", \"*\"]\n"))
	f.Add([]byte("patient_deposit = [\"*\"]\n[types]\n\"1-1\" = \"x\"\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		g, err := ParseGrid(text)
		if err != nil {
			return
		}
		for _, p := range []string{"10", "21", "60", ""} {
			g.MayDeposit(Depositor{Profession: p, Specialty: "SP01"}, &Document{TypeCode: Code{Code: "11502-2"}})
			g.Decide(Reader{NationalID: "8", Profession: p}, storedDoc("11502-2", HiddenFromProfessionals), DefaultControls(testINS))
		}
	})
}
