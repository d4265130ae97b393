package ldap

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/carepost/carepost/directory"
)

// searchTimeout bounds the work of one search.
const searchTimeout = 10 * time.Second

// maxCandidatePages bounds how many pages of candidates one query of a
// plan fetches when the filter's evaluation drops candidates; past them
// the search ends with sizeLimitExceeded ("more entries may match").
const maxCandidatePages = 4

// searchRequest is a decoded SearchRequest (RFC 4511 §4.5.1).
type searchRequest struct {
	base      string
	scope     int64 // 0 baseObject, 1 singleLevel, 2 wholeSubtree
	sizeLimit int64
	typesOnly bool
	filter    *Filter
	attrs     []string
}

func parseSearch(op *ber.Packet) (*searchRequest, error) {
	if op.TagType != ber.TypeConstructed || len(op.Children) != 8 {
		return nil, errMalformed
	}
	ch := op.Children
	var r searchRequest
	var err error
	if r.base, err = octets(ch[0]); err != nil {
		return nil, errMalformed
	}
	var ok1, ok2, ok3 bool
	r.scope, ok1 = intValue(ch[1], ber.TagEnumerated)
	_, ok2 = intValue(ch[2], ber.TagEnumerated)
	r.sizeLimit, ok3 = intValue(ch[3], ber.TagInteger)
	_, ok4 := intValue(ch[4], ber.TagInteger)
	tOnly, ok5 := ch[5].Value.(bool)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || ch[5].Tag != ber.TagBoolean || r.scope < 0 || r.scope > 3 || r.sizeLimit < 0 {
		return nil, errMalformed
	}
	r.typesOnly = tOnly
	if r.filter, err = decodeFilter(ch[6]); err != nil {
		return nil, err
	}
	if ch[7].TagType != ber.TypeConstructed || len(ch[7].Children) > 64 {
		return nil, errMalformed
	}
	for _, a := range ch[7].Children {
		s, err := octets(a)
		if err != nil {
			return nil, errMalformed
		}
		r.attrs = append(r.attrs, s)
	}
	return &r, nil
}

// selection is the attributes a search returns.
type selection struct {
	all   bool // "*" or no list: every user attribute
	oper  bool // "+": operational attributes (the root DSE's)
	names map[string]bool
}

func selectAttrs(attrs []string) selection {
	s := selection{all: len(attrs) == 0, names: map[string]bool{}}
	for _, a := range attrs {
		switch a = strings.TrimSpace(a); a {
		case "*":
			s.all = true
		case "+":
			s.oper = true
		case "1.1":
		default:
			s.names[canonicalAttr(a)] = true
		}
	}
	return s
}

func (s selection) wants(attr string) bool { return s.all || s.names[attr] }

func (s selection) apply(e *Entry) *Entry {
	out := &Entry{DN: e.DN}
	for _, a := range e.Attrs {
		if s.wants(a.Name) {
			out.Attrs = append(out.Attrs, a)
		}
	}
	return out
}

// search answers a SearchRequest.
func (c *conn) search(req *request) bool {
	done := func(code int, matched, text string, controls ...*ber.Packet) bool {
		c.send(message(req.id, result(opSearchDone, code, matched, text), controls...))
		return true
	}
	sr, err := parseSearch(req.op)
	if err != nil {
		text := "The search request is malformed (RFC 4511 §4.5.1)."
		if errors.Is(err, errFilter) {
			text = err.Error() + "."
		}
		return done(resultProtocolError, "", text)
	}
	rdns, ok := parseDN(sr.base)
	if !ok {
		return done(resultInvalidDNSyntax, "", "The search base "+strconvQuote(sr.base)+" is not a DN; the entries are under "+c.s.opts.BaseDN+".")
	}
	sel := selectAttrs(sr.attrs)
	if len(rdns) == 0 && sr.scope == 0 {
		e := c.rootDSE()
		if sr.filter.Matches(e) || sr.filter.Op == FilterPresent {
			out := &Entry{DN: ""}
			for _, a := range e.Attrs {
				if sel.all || sel.oper || sel.names[a.Name] || sel.names[strings.ToLower(a.Name)] {
					out.Attrs = append(out.Attrs, a)
				}
			}
			c.send(message(req.id, searchEntry(out, sr.typesOnly)))
		}
		return done(resultSuccess, "", "")
	}
	if c.bound == nil && !c.anonymousAllowed() {
		return done(resultInsufficientAccessRights, "", "Bind first with your mailbox address and its IMAP password: "+
			"anonymous searches are not allowed from your address.")
	}
	// Where the base is: the suffix itself, above it (dc=…, or the
	// empty DN), one entry below it, or elsewhere.
	n := normDN(rdns)
	var withBase, withListings bool
	only := ""
	switch {
	case n == c.s.baseN:
		// subordinateSubtree (3) is wholeSubtree without the base.
		withBase, withListings = sr.scope == 0 || sr.scope == 2, sr.scope != 0
	case n == "" || strings.HasSuffix(c.s.baseN, ","+n):
		parentOfBase := len(rdns) == len(c.s.base)-1
		withBase = sr.scope >= 2 || sr.scope == 1 && parentOfBase
		withListings = sr.scope >= 2
		if sr.scope == 0 {
			return done(resultNoSuchObject, "", "No entry "+strconvQuote(sr.base)+" here: the entries are under "+c.s.opts.BaseDN+".")
		}
	case strings.HasSuffix(n, ","+c.s.baseN) && len(rdns) == len(c.s.base)+1 &&
		(canonicalLower(rdns[0].attr) == "mail" || canonicalLower(rdns[0].attr) == "uid"):
		if sr.scope == 1 {
			return done(resultSuccess, "", "")
		}
		only, withListings = rdns[0].value, true
	default:
		matched := ""
		if strings.HasSuffix(n, ","+c.s.baseN) {
			matched = c.s.opts.BaseDN
		}
		return done(resultNoSuchObject, matched, "No entry "+strconvQuote(sr.base)+" here: the entries are under "+c.s.opts.BaseDN+".")
	}

	limit := c.s.opts.MaxResults
	if sr.sizeLimit > 0 && sr.sizeLimit < int64(limit) {
		limit = int(sr.sizeLimit)
	}
	paged, pageSize, offset := false, 0, 0
	for _, ctl := range req.controls {
		if ctl.oid == oidPaging {
			size, cookie, err := parsePaging(ctl.value)
			if err != nil {
				return done(resultProtocolError, "", "The paged results control is malformed (RFC 2696).")
			}
			paged, pageSize = true, size
			if cookie != "" {
				if offset, err = strconv.Atoi(cookie); err != nil || offset < 0 {
					return done(resultUnwillingToPerform, "", "The paged results cookie is not one of this server's; start the search again.")
				}
			}
		}
	}
	if paged && pageSize == 0 {
		return done(resultSuccess, "", "", pagingControl(""))
	}

	start := time.Now()
	var entries []*Entry
	if withBase {
		if e := c.baseEntry(); sr.filter.Matches(e) {
			entries = append(entries, e)
		}
	}
	exceeded := false
	if withListings {
		ctx, cancel := context.WithTimeout(context.Background(), searchTimeout)
		ls, more, err := c.s.listings(ctx, sr.filter, only, sel.wants(attrCert), limit+1-len(entries))
		cancel()
		if err != nil {
			c.s.logger.Error("ldap: search failed", "remote", c.remote, "filter", sr.filter.String(), "err", err)
			return done(resultOther, "", "The directory could not be searched; please try again.")
		}
		entries = append(entries, ls...)
		exceeded = more
	}
	if len(entries) > limit {
		entries, exceeded = entries[:limit], true
	}
	c.s.logger.Debug("ldap: search", "remote", c.remote, "user", c.user(), "base", sr.base, "scope", sr.scope,
		"filter", sr.filter.String(), "entries", len(entries), "size_limit_exceeded", exceeded,
		"ms", time.Since(start).Milliseconds())

	var controls []*ber.Packet
	if paged {
		next := ""
		if offset > len(entries) {
			offset = len(entries)
		}
		end := min(len(entries), offset+pageSize)
		if end < len(entries) {
			next = strconv.Itoa(end)
		}
		entries = entries[offset:end]
		controls = append(controls, pagingControl(next))
		if next != "" {
			exceeded = false // said at the last page
		}
	}
	for _, e := range entries {
		if err := c.send(message(req.id, searchEntry(sel.apply(e), sr.typesOnly))); err != nil {
			return false
		}
	}
	if exceeded {
		return done(resultSizeLimitExceeded, "", "More entries match than the size limit ("+strconv.Itoa(limit)+
			") lets this search return: refine the filter (a longer name, a city, a profession).", controls...)
	}
	return done(resultSuccess, "", "", controls...)
}

func strconvQuote(s string) string { return strconv.Quote(s) }

func (c *conn) user() string {
	if c.bound != nil {
		return c.bound.Address
	}
	return "anonymous"
}

// listings returns the entries of the listings that f accepts, at most
// limit, fetched as plan.go says; more is true when more may match.
func (s *Server) listings(ctx context.Context, f *Filter, only string, withCerts bool, limit int) (entries []*Entry, more bool, err error) {
	p := planFilter(f)
	if only != "" {
		p = planOf(directory.ListingQuery{Address: only})
	}
	if p.none || limit <= 0 {
		return nil, limit <= 0, nil
	}
	qs := collapse(p.qs)
	if p.all {
		qs = []directory.ListingQuery{{}}
	}
	seen := map[string]bool{}
	for _, q := range qs {
		q.WithCerts = withCerts
		q.Limit = min(limit+1, directory.MaxSearchLimit)
		exhausted := false
		for range maxCandidatePages {
			ls, err := s.opts.Dir.SearchListings(ctx, q)
			if err != nil {
				return nil, false, err
			}
			for i := range ls {
				l := &ls[i]
				// Patients' mailboxes (their INS at the patient domain)
				// are no professional's address book entry.
				if l.Kind == directory.KindPatient || seen[strings.ToLower(l.Address)] {
					continue
				}
				seen[strings.ToLower(l.Address)] = true
				if e := listingEntry(l, s.opts.BaseDN); f.Matches(e) {
					entries = append(entries, e)
				}
			}
			if len(ls) < q.Limit {
				exhausted = true
				break
			}
			if len(entries) > limit {
				break
			}
			q.Offset += len(ls)
		}
		if !exhausted {
			more = true
		}
		if len(entries) > limit {
			break
		}
	}
	if len(qs) > 1 {
		slices.SortStableFunc(entries, func(a, b *Entry) int {
			return strings.Compare(sortKey(a), sortKey(b))
		})
	}
	if len(entries) > limit {
		entries, more = entries[:limit], true
	}
	return entries, more, nil
}

func sortKey(e *Entry) string {
	first := func(a string) string {
		if v := e.values(a); len(v) > 0 {
			return directory.FoldSearch(v[0])
		}
		return ""
	}
	return first(attrSN) + "\x00" + first(attrGivenName) + "\x00" + first(attrMail)
}

// baseEntry is the entry of the base DN.
func (c *conn) baseEntry() *Entry {
	e := &Entry{DN: c.s.opts.BaseDN}
	e.add(attrObjectClass, baseClasses...)
	e.add(c.s.base[0].attr, c.s.base[0].value)
	return e
}

// rootDSE is the entry of the empty DN (RFC 4512 §5.1).
func (c *conn) rootDSE() *Entry {
	e := &Entry{}
	e.add(attrObjectClass, "top")
	e.add("namingContexts", c.s.opts.BaseDN)
	e.add("supportedLDAPVersion", "3")
	ext := []string{oidWhoAmI}
	if c.s.opts.StartTLS != nil && !c.tls {
		ext = append(ext, oidStartTLS)
	}
	e.add("supportedExtension", ext...)
	e.add("supportedControl", oidPaging)
	e.add("vendorName", "Carepost")
	return e
}
