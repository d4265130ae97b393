package ldap

import (
	"slices"
	"strings"

	"github.com/carepost/carepost/directory"
)

// A filter is answered in two steps: the candidates are fetched with
// directory.SearchListings, whose ListingQuery expresses a conjunction of
// "contains" (or, all together, "starts with") conditions on a few fields
// and exact address and identifier; then the whole filter is evaluated on
// each candidate's entry (Filter.Matches). The plan of the first step is
// a superset of what the filter accepts, made as selective as
// ListingQuery allows:
//
//   - an item (sn=Dup*), (mail=x@y), (cn=*martin*) maps to the field of
//     its attribute: Address for an equality on mail or uid, NationalID
//     for one on employeeNumber, a prefix condition for an initial
//     substring or an equality, "contains" otherwise;
//   - (&...) keeps the most selective of its operands (a union of
//     queries or one), each query narrowed by the other operands that are
//     one query when ListingQuery can hold them together;
//   - (|...) is the union of its operands' plans (one SearchListings
//     each): Thunderbird's (|(cn=mar*)(mail=mar*)(sn=mar*)) is three
//     indexed prefix searches, not a scan;
//   - (!...), presence, >= and <= select nothing: a filter made only of
//     them (objectClass=*) gets the first entries in name order, up to
//     the size limit, and sizeLimitExceeded, as a large directory does.
//
// Limits (docs in the package comment): cn and sn are also the
// organisation's name for a mailbox without a holder's name, so that
// their plans add an Organisation search; a mailbox with neither names
// nor organisation has its address as cn, found by mail but not by cn.
type plan struct {
	all  bool // no condition selects: every listing is a candidate
	none bool // no listing can match (an attribute this view lacks)
	qs   []directory.ListingQuery
}

var (
	planAll  = plan{all: true}
	planNone = plan{none: true}
)

func planOf(qs ...directory.ListingQuery) plan { return plan{qs: qs} }

// planFilter returns the plan of f.
func planFilter(f *Filter) plan {
	switch f.Op {
	case FilterAnd:
		var best plan
		var rest []plan
		found := false
		for _, s := range f.Sub {
			p := planFilter(s)
			switch {
			case p.none:
				return planNone
			case p.all:
				continue
			case !found || p.score() > best.score():
				if found {
					rest = append(rest, best)
				}
				best, found = p, true
			default:
				rest = append(rest, p)
			}
		}
		if !found {
			return planAll
		}
		// The other operands that are one query each narrow every query
		// of the chosen plan where ListingQuery can hold both.
		qs := slices.Clone(best.qs)
		for i := range qs {
			for _, r := range rest {
				if len(r.qs) == 1 {
					if m, ok := merge(qs[i], r.qs[0]); ok {
						qs[i] = m
					}
				}
			}
		}
		return plan{qs: qs}
	case FilterOr:
		var qs []directory.ListingQuery
		for _, s := range f.Sub {
			p := planFilter(s)
			switch {
			case p.all:
				return planAll
			case p.none:
				continue
			}
			for _, q := range p.qs {
				if !slices.ContainsFunc(qs, func(o directory.ListingQuery) bool { return sameQuery(o, q) }) {
					qs = append(qs, q)
				}
			}
		}
		if len(qs) == 0 {
			return planNone
		}
		return plan{qs: qs}
	case FilterNot, FilterGreaterOrEqual, FilterLessOrEqual:
		return planAll
	case FilterExtensible:
		return planNone
	case FilterPresent:
		if knownAttr(f.Attr) && f.Attr != attrOU {
			return planAll
		}
		return planNone
	}
	return planItem(f)
}

// planItem plans an equality, substrings or approximate item. Each query
// also carries the searched value as Text (every word of it occurs in
// the listing): implied by the field condition, so nothing more is
// filtered out, but it is the condition that SearchListings on main
// applies in the store (the field conditions are checked on the rows the
// store returned, the first thousand or so in name order), so that
// searches find every match however many mailboxes there are. Once
// SearchListings indexes the fields themselves (the national directory's
// import), withText may go.
func planItem(f *Filter) plan {
	p := planItemFields(f)
	for i := range p.qs {
		p.qs[i] = withText(p.qs[i])
	}
	return p
}

func withText(q directory.ListingQuery) directory.ListingQuery {
	if q.Text == "" {
		// Not the profession: the store's words hold the profession's
		// label but not the specialty's.
		for _, v := range []string{q.Address, q.Mail, q.Name, q.LastName, q.FirstName, q.Organisation, q.City} {
			if v != "" {
				q.Text = v
				break
			}
		}
	}
	return q
}

func planItemFields(f *Filter) plan {
	// The value to search and whether it is a prefix of the attribute's.
	v, prefix := f.Value, f.Op == FilterEqual
	if f.Op == FilterSubstrings {
		v, prefix = f.Initial, true
		if len([]rune(directory.FoldSearch(v))) < 2 {
			// A one-letter prefix selects less than a longer piece.
			longest := ""
			for _, s := range append(slices.Clone(f.Any), f.Final) {
				if len(directory.FoldSearch(s)) > len(directory.FoldSearch(longest)) {
					longest = s
				}
			}
			if len(directory.FoldSearch(longest)) > len(directory.FoldSearch(v)) {
				v, prefix = longest, false
			}
		}
	}
	if directory.FoldSearch(v) == "" && f.Attr != attrObjectClass {
		return planAll
	}
	q := directory.ListingQuery{Prefix: prefix}
	switch f.Attr {
	case attrObjectClass:
		if f.Op != FilterEqual {
			return planAll
		}
		for _, c := range personClasses {
			if strings.EqualFold(c, strings.TrimSpace(f.Value)) {
				return planAll
			}
		}
		return planNone
	case attrMail, attrUID:
		if f.Op == FilterEqual {
			return planOf(directory.ListingQuery{Address: strings.TrimSpace(v)})
		}
		q.Mail = v
	case attrCN, attrDisplayName:
		q.Name = v
		o := q
		o.Name, o.Organisation = "", v
		return planOf(q, o)
	case attrSN:
		q.LastName = v
		o := q
		o.LastName, o.Organisation = "", v
		return planOf(q, o)
	case attrGivenName:
		q.FirstName = v
	case attrTitle:
		// The profession's condition also looks at codes ("10 (Médecin)"):
		// never a prefix.
		q.Profession, q.Prefix = v, false
	case attrO:
		q.Organisation = v
	case attrL:
		q.City = v
	case attrEmployeeNum:
		if f.Op == FilterEqual {
			return planOf(directory.ListingQuery{NationalID: strings.TrimSpace(v)})
		}
		q.Text, q.Prefix = v, false
	case attrEmployeeType:
		if f.Op == FilterEqual {
			return planOf(directory.ListingQuery{Kind: directory.Kind(strings.ToUpper(strings.TrimSpace(v)))})
		}
		return planAll
	default: // ou (the base entry only), userCertificate, unknown: Undefined
		return planNone
	}
	return planOf(q)
}

// merge joins two conditions into one query when ListingQuery can hold
// both: no field set in both, the same Prefix for the fields.
func merge(a, b directory.ListingQuery) (directory.ListingQuery, bool) {
	text := strings.TrimSpace(a.Text + " " + b.Text) // every word of both
	a.Text, b.Text = "", ""
	af, bf := fields(&a), fields(&b)
	for i := range af {
		if *af[i] != "" && *bf[i] != "" {
			return a, false
		}
	}
	a.Text = text
	if a.Kind != "" && b.Kind != "" || hasPrefixable(a) && hasPrefixable(b) && a.Prefix != b.Prefix {
		return a, false
	}
	if !hasPrefixable(a) {
		a.Prefix = b.Prefix
	}
	for i := range af {
		if *af[i] == "" {
			*af[i] = *bf[i]
		}
	}
	if a.Kind == "" {
		a.Kind = b.Kind
	}
	return a, true
}

func fields(q *directory.ListingQuery) []*string {
	return []*string{&q.Mail, &q.Name, &q.LastName, &q.FirstName, &q.Profession, &q.Organisation, &q.City,
		&q.Text, &q.Address, &q.NationalID}
}

// hasPrefixable: a field condition that Prefix changes is set.
func hasPrefixable(q directory.ListingQuery) bool {
	return q.Mail != "" || q.Name != "" || q.LastName != "" || q.FirstName != "" || q.Profession != "" ||
		q.Organisation != "" || q.City != ""
}

func sameQuery(a, b directory.ListingQuery) bool {
	af, bf := fields(&a), fields(&b)
	for i := range af {
		if directory.FoldSearch(*af[i]) != directory.FoldSearch(*bf[i]) {
			return false
		}
	}
	return a.Prefix == b.Prefix && a.Kind == b.Kind
}

// score estimates how selective a plan is: exact address or identifier
// first, then the longest prefix, then the longest piece; a union is as
// weak as its weakest query.
func (p plan) score() int {
	if p.none {
		return 1 << 30
	}
	if p.all || len(p.qs) == 0 {
		return -1
	}
	low := 1 << 30
	for _, q := range p.qs {
		s := 0
		if q.Address != "" || q.NationalID != "" {
			s = 1000
		}
		for _, f := range fields(&q)[:8] {
			n := len(directory.FoldSearch(*f))
			if q.Prefix && f != &q.Text {
				n *= 2
			}
			s += n
		}
		if q.Kind != "" {
			s++
		}
		low = min(low, s)
	}
	return low - (len(p.qs) - 1)
}

// collapse turns a union of queries that all carry the same Text into
// that Text alone: a superset of each (withText), answered by one
// SearchListings instead of one per field. Thunderbird's
// (|(cn=dupo*)(mail=dupo*)(sn=dupo*)(givenName=dupo*)) is five queries
// (cn and sn add the organisation's) that the store answers with five
// scans of the same words; collapsed, one. The filter's evaluation then
// keeps what each field condition would have.
func collapse(qs []directory.ListingQuery) []directory.ListingQuery {
	if len(qs) < 2 {
		return qs
	}
	text := directory.FoldSearch(qs[0].Text)
	for _, q := range qs {
		if text == "" || directory.FoldSearch(q.Text) != text || q.Address != "" || q.NationalID != "" || q.Kind != "" {
			return qs
		}
	}
	return []directory.ListingQuery{{Text: qs[0].Text}}
}
