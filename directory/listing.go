package directory

import (
	"context"
	"strings"
)

// Listing is one address of the directory as users look it up (the
// address book of mail clients over LDAP, `carepost dir search`, the JSON
// search of the https listener): a mailbox hosted here (Local) or one of
// the national directory of secure-messaging addresses, with what is
// known of its holder. Entries on the liste rouge are never listings.
type Listing struct {
	Address string
	Kind    Kind
	Status  Status
	Local   bool // a mailbox of this server (an Entry), not only a national record
	// NationalID: 8+RPPS / 0+ADELI for a professional, "" otherwise.
	NationalID string
	FirstName  string
	LastName   string
	Profession string // TRE_G15 code; ProfessionLabel(Profession) names it
	Specialty  string // TRE_R38 code; SpecialtyLabel names it
	// Organisation names the structure (its name when known, else its
	// identifier); City is the town of the practice place.
	Organisation string
	City         string
	// Certificates are the DER of the mailbox's public S/MIME
	// certificates (an LDAP view publishes them as
	// userCertificate;binary); filled only when ListingQuery.WithCerts.
	Certificates [][]byte
}

// ListingQuery selects listings. Every non-empty condition must hold;
// comparisons fold case and accents (FoldSearch) and test "contains",
// except Address and NationalID, which are exact.
type ListingQuery struct {
	// Text: every word must occur somewhere in the listing (address,
	// names, identifier, profession and specialty codes and labels,
	// organisation, city).
	Text string
	// Field conditions (LDAP filters map to them: mail, cn, sn,
	// givenName, title, o, l).
	Mail, Name, LastName, FirstName, Profession, Organisation, City string
	// Prefix makes the field conditions "starts with" instead of
	// "contains" (LDAP "sn=dup*").
	Prefix     bool
	Address    string
	NationalID string
	Kind       Kind
	// IncludeInactive also returns suspended and closed mailboxes
	// (the operator's view).
	IncludeInactive bool
	WithCerts       bool
	// Limit (≤ 0: DefaultSearchLimit, capped at MaxSearchLimit) and
	// Offset page the results, ordered by last name, first name, address.
	Limit, Offset int
}

// SearchListings returns the listings matching q. Today it searches the
// mailboxes hosted here (the directory's entries); the import of the
// national directory (issue #27) adds its records.
func (d *Directory) SearchListings(ctx context.Context, q ListingQuery) ([]Listing, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	f := ListFilter{Query: q.Text, Kind: q.Kind, NationalID: q.NationalID, Limit: limit + q.Offset + 1000}
	if !q.IncludeInactive {
		f.Status = StatusActive
	}
	es, err := d.store.List(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []Listing
	for _, e := range es {
		l := Listing{Address: e.Address, Kind: e.Kind, Status: e.Status, Local: true, NationalID: e.NationalID,
			FirstName: e.FirstName, LastName: e.LastName, Profession: e.Profession, Specialty: e.Specialty,
			Organisation: e.Organisation}
		if !q.matches(l) {
			continue
		}
		if q.WithCerts {
			certs, err := d.store.MailboxCerts(ctx, e.Address)
			if err != nil {
				return nil, err
			}
			for _, c := range certs {
				if !c.Remote {
					l.Certificates = append(l.Certificates, c.DER)
				}
			}
		}
		out = append(out, l)
	}
	if q.Offset >= len(out) {
		return nil, nil
	}
	out = out[q.Offset:]
	return out[:min(len(out), limit)], nil
}

// matches checks the field conditions of q on l.
func (q ListingQuery) matches(l Listing) bool {
	if q.Address != "" && !strings.EqualFold(q.Address, l.Address) {
		return false
	}
	test := func(want string, have ...string) bool {
		if want == "" {
			return true
		}
		w := FoldSearch(want)
		for _, h := range have {
			h = FoldSearch(h)
			if q.Prefix && strings.HasPrefix(h, w) || !q.Prefix && strings.Contains(h, w) {
				return true
			}
		}
		return false
	}
	return test(q.Mail, l.Address) && test(q.Name, l.FirstName+" "+l.LastName, l.LastName+" "+l.FirstName) &&
		test(q.LastName, l.LastName) && test(q.FirstName, l.FirstName) &&
		test(q.Profession, l.Profession, ProfessionLabel(l.Profession), SpecialtyLabel(l.Specialty)) &&
		test(q.Organisation, l.Organisation) && test(q.City, l.City)
}
