// Command natgen writes synthetic extraction files of the national
// directory (issue #27), for the import benchmark (BENCHMARKS.md) and the
// samples of testdata/:
//
//	go run ./bench/natgen -format ps-libreacces -n 1000000 > /tmp/ps.txt
//	go run ./bench/natgen -format mssante -n 1000000 > /tmp/mss.txt
//
// The lines look like the real ones (docs/domain.md §4): the columns of
// directory.PSLibreAccesHeader (with the trailing "|") or
// directory.MSSanteHeader, valid RPPS numbers (Luhn key), French names
// with their accents, TRE_G15 profession codes, specialties, practice
// places in French towns. One professional in ten has two practice
// places (two consecutive lines). The same -seed gives the same
// professionals in both formats, so the MSSanté file's PER addresses
// belong to the PS_LibreAcces file's professionals; -start N begins at the
// N-th professional (a later extraction: the first N have left, as many
// new ones came). -latin1 writes the
// file in ISO 8859-1, like the older extractions; -malformed F makes a
// fraction F of the lines malformed (a field missing).
//
// Every record is synthetic: no name, number or address is a real
// person's. The specialty codes other than SM26, SM53, SM54 and SM59 are
// recalled from TRE_R38, not checked against it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/carepost/carepost/directory"
)

var (
	lastNames = []string{"MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND",
		"LEROY", "MOREAU", "SIMON", "LAURENT", "LEFÈVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX",
		"VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET",
		"FRANÇOIS", "MARTINEZ", "LEGRAND", "GARNIER", "FAURE", "ROUSSEAU", "BLANC", "GUÉRIN", "MULLER",
		"HENRY", "ROUSSEL", "NICOLAS", "PERRIN", "MORIN", "MATHIEU", "CLÉMENT", "GAUTHIER", "DUMONT",
		"LOPEZ", "FONTAINE", "CHEVALIER", "ROBIN", "LE GOFF", "NGUYEN", "BOYER", "CHÂTELAIN", "BÉNARD",
		"DUPUIS", "DUPRÉ", "LEBRETON", "KERGOAT", "HÉBERT", "NOËL"}
	syllables = []string{"BA", "BER", "BOU", "CA", "CHA", "DE", "DU", "FA", "GA", "GUI", "LA", "LE",
		"LO", "MA", "MI", "MON", "NA", "PE", "PI", "RA", "RO", "SA", "TA", "TE", "VA", "VI", "ZE", "QUE",
		"RIN", "RAND", "TIER", "NET", "LET", "VET", "MAS", "GNE", "LIN", "ROT", "DIN", "ZON"}
	firstNames = []string{"Jean", "Marie", "Hélène", "Jérôme", "François", "Zoé", "Anaïs", "Loïc",
		"Gaëlle", "Benoît", "Céline", "Noémie", "Léa", "Chloé", "Inès", "Maël", "Raphaël", "Joël",
		"Françoise", "Stéphane", "Frédéric", "Sébastien", "Thérèse", "Agnès", "Élodie", "Émilie",
		"Nicolas", "Pierre", "Paul", "Louis", "Camille", "Julie", "Sophie", "Thomas", "Lucas", "Hugo",
		"Manon", "Sarah", "Laura", "Claire", "Anne", "Isabelle", "Nathalie", "Sylvie", "Christophe",
		"Olivier", "Laurent", "Philippe", "Éric", "Cécile", "Jean-Pierre", "Marie-Hélène", "Anne-Sophie"}
	cities = []struct{ name, pc string }{{"LYON", "69003"}, {"PARIS", "75012"}, {"MARSEILLE", "13005"},
		{"TOULOUSE", "31000"}, {"NICE", "06000"}, {"NANTES", "44000"}, {"STRASBOURG", "67000"},
		{"MONTPELLIER", "34000"}, {"BORDEAUX", "33000"}, {"LILLE", "59000"}, {"RENNES", "35000"},
		{"REIMS", "51100"}, {"SAINT-ÉTIENNE", "42000"}, {"LE HAVRE", "76600"}, {"TOULON", "83000"},
		{"GRENOBLE", "38000"}, {"DIJON", "21000"}, {"ANGERS", "49000"}, {"NÎMES", "30000"},
		{"VILLEURBANNE", "69100"}, {"CLERMONT-FERRAND", "63000"}, {"LE MANS", "72000"},
		{"AIX-EN-PROVENCE", "13100"}, {"BREST", "29200"}, {"TOURS", "37000"}, {"AMIENS", "80000"},
		{"LIMOGES", "87000"}, {"ANNECY", "74000"}, {"PERPIGNAN", "66000"}, {"BESANÇON", "25000"},
		{"ORLÉANS", "45000"}, {"ROUEN", "76000"}, {"MULHOUSE", "68100"}, {"CAEN", "14000"},
		{"NANCY", "54000"}, {"AVIGNON", "84000"}, {"POITIERS", "86000"}, {"PAU", "64000"},
		{"LA ROCHELLE", "17000"}, {"BÉZIERS", "34500"}, {"COLMAR", "68000"}, {"VALENCE", "26000"},
		{"QUIMPER", "29000"}, {"ÉVREUX", "27000"}, {"CHAMBÉRY", "73000"}, {"ÉPINAL", "88000"}}
	specialties = []struct{ code, label string }{{"SM54", "Médecine générale"}, {"SM53", "Spécialiste en médecine générale"},
		{"SM04", "Cardiologie et maladies vasculaires"}, {"SM40", "Pédiatrie"}, {"SM42", "Psychiatrie"},
		{"SM15", "Dermatologie et vénéréologie"}, {"SM02", "Anesthésie-réanimation"}, {"SM32", "Neurologie"},
		{"SM38", "Ophtalmologie"}, {"SM20", "Gynécologie-obstétrique"}, {"SM59", "Médecine d'urgence"}}
	// professions weighted roughly like the register.
	professions = []struct {
		code   string
		weight int
	}{{"10", 40}, {"60", 25}, {"70", 10}, {"21", 8}, {"40", 5}, {"50", 3}, {"91", 3}, {"80", 2}, {"92", 1},
		{"94", 1}, {"95", 1}, {"96", 1}}
)

func main() {
	format := flag.String("format", "ps-libreacces", "ps-libreacces or mssante")
	n := flag.Int("n", 1000, "number of lines")
	seed := flag.Uint64("seed", 27, "random seed")
	latin1 := flag.Bool("latin1", false, "write ISO 8859-1 instead of UTF-8")
	malformed := flag.Float64("malformed", 0, "fraction of malformed lines")
	start := flag.Int("start", 0, "number of the first professional (another range of RPPS)")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	out := func(s string) {
		if *latin1 {
			b := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					r = '?'
				}
				b = append(b, byte(r))
			}
			w.Write(b)
			return
		}
		w.WriteString(s)
	}
	bad := rand.New(rand.NewPCG(*seed, 2))
	var g gen
	switch *format {
	case "ps-libreacces":
		out(strings.Join(directory.PSLibreAccesHeader, "|") + "|\n")
		g = psGen{}
	case "mssante":
		out(strings.Join(directory.MSSanteHeader, "|") + "\n")
		g = msGen{}
	default:
		fmt.Fprintln(os.Stderr, "natgen: -format is ps-libreacces or mssante")
		os.Exit(2)
	}
	for i, lines := *start, 0; lines < *n; i++ {
		// Each professional has a generator of its own: the same in
		// both formats, and the same whatever -start.
		rng := rand.New(rand.NewPCG(*seed, uint64(i)))
		p := person(rng, i)
		for _, l := range g.lines(p, rng) {
			if lines == *n {
				break
			}
			if *malformed > 0 && bad.Float64() < *malformed {
				l = l[:strings.LastIndexByte(strings.TrimSuffix(l, "|"), '|')] // a field missing
			}
			out(l + "\n")
			lines++
		}
	}
}

type place struct{ org, id, mode, city, pc string }

type prof struct {
	rpps, last, first, civ, profession, spec, specLabel string
	places                                              []place
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func person(rng *rand.Rand, i int) prof {
	p := prof{rpps: directory.LuhnComplete(fmt.Sprintf("1%09d", i)), first: pick(rng, firstNames)}
	if rng.IntN(10) < 3 {
		p.last = pick(rng, lastNames)
	} else {
		k := 2 + rng.IntN(2)
		for j := 0; j < k; j++ {
			p.last += pick(rng, syllables)
		}
	}
	w := rng.IntN(100)
	for _, pr := range professions {
		if w < pr.weight {
			p.profession = pr.code
			break
		}
		w -= pr.weight
	}
	if p.profession == "" {
		p.profession = "10"
	}
	p.civ = "Madame"
	if rng.IntN(2) == 0 {
		p.civ = "Monsieur"
	}
	if p.profession == "10" {
		p.civ = "Docteur"
		s := specialties[0]
		if rng.IntN(2) == 0 {
			s = pick(rng, specialties)
		}
		p.spec, p.specLabel = s.code, s.label
	}
	np := 1
	if rng.IntN(10) == 0 {
		np = 2
	}
	for j := 0; j < np; j++ {
		c := pick(rng, cities)
		pl := place{city: c.name, pc: c.pc, mode: "L"}
		switch rng.IntN(4) {
		case 0:
			pl.org, pl.mode = "CENTRE HOSPITALIER UNIVERSITAIRE DE "+c.name, "S"
			pl.id = c.pc[:2] + fmt.Sprintf("%07d", rng.IntN(10000000))
		case 1:
			pl.org = "MAISON DE SANTÉ PLURIPROFESSIONNELLE " + c.name
			pl.id = fmt.Sprintf("%014d", rng.Int64N(1e14))
		default:
			pl.org = "CABINET " + p.last
			pl.id = fmt.Sprintf("%014d", rng.Int64N(1e14))
		}
		p.places = append(p.places, pl)
	}
	return p
}

type gen interface {
	lines(p prof, rng *rand.Rand) []string
}

type psGen struct{}

var psIdx = index(directory.PSLibreAccesHeader)
var msIdx = index(directory.MSSanteHeader)

func index(h []string) map[string]int {
	m := map[string]int{}
	for i, c := range h {
		m[c] = i
	}
	return m
}

func (psGen) lines(p prof, _ *rand.Rand) []string {
	var out []string
	for _, pl := range p.places {
		f := make([]string, len(directory.PSLibreAccesHeader)+1) // the trailing "|"
		set := func(col, v string) { f[psIdx[col]] = v }
		set("Type d'identifiant PP", "8")
		set("Identifiant PP", p.rpps)
		set("Identification nationale PP", "8"+p.rpps)
		set("Libellé civilité d'exercice", p.civ)
		set("Nom d'exercice", p.last)
		set("Prénom d'exercice", p.first)
		set("Code profession", p.profession)
		set("Libellé profession", directory.Professions[p.profession])
		set("Code catégorie professionnelle", "C")
		set("Libellé catégorie professionnelle", "Civil")
		if p.spec != "" {
			set("Code type savoir-faire", "S")
			set("Libellé type savoir-faire", "Spécialité ordinale")
			set("Code savoir-faire", p.spec)
			set("Libellé savoir-faire", p.specLabel)
		}
		set("Code mode exercice", pl.mode)
		if len(pl.id) == 9 {
			set("Numéro FINESS site", pl.id)
		} else {
			set("Numéro SIRET site", pl.id)
			set("Numéro SIREN site", pl.id[:9])
		}
		set("Raison sociale site", pl.org)
		set("Code postal (coord. structure)", pl.pc)
		set("Libellé commune (coord. structure)", pl.city)
		set("Code pays (coord. structure)", "99000")
		set("Libellé pays (coord. structure)", "France")
		set("Code Département (structure)", pl.pc[:2])
		out = append(out, strings.Join(f, "|"))
	}
	return out
}

type msGen struct{}

// asciiLocal makes a local part of a name: folded, letters only.
func asciiLocal(s string) string {
	s = directory.FoldSearch(s)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r
		}
		if r == ' ' || r == '-' {
			return '-'
		}
		return -1
	}, s)
}

func (msGen) lines(p prof, rng *rand.Rand) []string {
	pl := p.places[0]
	domain := "medecin.mssante.fr"
	if pl.mode == "S" {
		domain = "ch-" + asciiLocal(pl.city) + ".mssante.fr"
	} else if p.profession != "10" {
		domain = "pro.mssante.fr"
	}
	f := make([]string, len(directory.MSSanteHeader))
	set := func(col, v string) { f[msIdx[col]] = v }
	set("Type de BAL", "PER")
	set("Adresse BAL", asciiLocal(p.first)+"."+asciiLocal(p.last)+"."+p.rpps[6:]+"@"+domain)
	set("Type Identifiant PP", "8")
	set("Identifiant PP", p.rpps)
	set("Identification nationale PP", "8"+p.rpps)
	if len(pl.id) == 9 {
		set("Type identifiant structure", "1")
		set("Identification Structure", "1"+pl.id)
	} else {
		set("Type identifiant structure", "3")
		set("Identification Structure", "3"+pl.id)
	}
	set("Civilité d'exercice", p.civ)
	set("Nom d'exercice", p.last)
	set("Prénom d'exercice", p.first)
	set("Code Profession", p.profession)
	set("Libellé Profession", directory.Professions[p.profession])
	set("Code savoir-faire", p.spec)
	set("Libellé savoir-faire", p.specLabel)
	set("Dématérialisation", "O")
	set("Raison Sociale structure BAL", pl.org)
	set("L6LIGNEACHEMINEMENT structure BAL", pl.pc+" "+pl.city)
	set("Code postal structure BAL", pl.pc)
	set("Département structure BAL", pl.pc[:2])
	set("Pays structure BAL", "FRANCE")
	out := []string{strings.Join(f, "|")}
	if pl.mode == "S" && rng.IntN(8) == 0 {
		// The secretariat of the service: an ORG mailbox.
		g := make([]string, len(f))
		copy(g, f)
		set := func(col, v string) { g[msIdx[col]] = v }
		for _, c := range []string{"Type Identifiant PP", "Identifiant PP", "Identification nationale PP",
			"Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice", "Code Profession", "Libellé Profession",
			"Code savoir-faire", "Libellé savoir-faire"} {
			set(c, "")
		}
		set("Type de BAL", "ORG")
		svc := "Secrétariat"
		if p.specLabel != "" {
			svc = p.specLabel
		}
		set("Service de rattachement", svc)
		set("Adresse BAL", "secretariat."+p.rpps[6:]+"@"+domain)
		out = append(out, strings.Join(g, "|"))
	}
	return out
}
