package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/carepost/carepost/directory"
)

// The directory search of the https listener (SPEC §2: search through a
// JSON HTTP API; issue #27), for the practice software and the clients of
// the space's users:
//
//	GET /api/v1/directory?q=cardiologue+lyon&page=1&per_page=20
//	Authorization: Basic base64(address:password)
//
// Parameters: q (words that must all occur: names, identifiers,
// profession, specialty, organisation, city, address), and the field
// conditions mail, name, profession, city, organisation (each "a word
// starts with", accents and case folded); page (from 1) and per_page
// (1 to 100, default 20). The answer is the listings of
// directory.SearchListings (mailboxes hosted here and the national
// directory's addresses; never the liste rouge, never a closed or
// suspended mailbox):
//
//	{"items": [{"address": "...", "kind": "PER", "national_id": "8…",
//	  "first_name": "...", "last_name": "...", "profession": "10",
//	  "profession_label": "Médecin", "specialty": "SM04",
//	  "specialty_label": "...", "organisation": "...", "city": "...",
//	  "local": false}],
//	 "page": 1, "per_page": 20, "has_more": true}
//
// The caller authenticates like the access history (history.go): a
// mailbox's address and its password or an application password, through
// the same authenticator and limiter as SMTP AUTH and IMAP LOGIN, each
// login recorded (https.login, service "directory").

// DirectoryPath is where the directory search is served.
const DirectoryPath = "/api/v1/directory"

const (
	dirAPIDefaultPerPage = 20
	dirAPIMaxPerPage     = 100
	// dirAPIMaxPage bounds the depth of paging (a page is read from
	// the start of the ordered result).
	dirAPIMaxPage = 100
)

type dirAPIItem struct {
	Address         string `json:"address,omitempty"`
	Kind            string `json:"kind,omitempty"`
	NationalID      string `json:"national_id,omitempty"`
	FirstName       string `json:"first_name,omitempty"`
	LastName        string `json:"last_name,omitempty"`
	Profession      string `json:"profession,omitempty"`
	ProfessionLabel string `json:"profession_label,omitempty"`
	Specialty       string `json:"specialty,omitempty"`
	SpecialtyLabel  string `json:"specialty_label,omitempty"`
	Organisation    string `json:"organisation,omitempty"`
	City            string `json:"city,omitempty"`
	Local           bool   `json:"local"`
}

type dirAPIAnswer struct {
	Items   []dirAPIItem `json:"items"`
	Page    int          `json:"page"`
	PerPage int          `json:"per_page"`
	HasMore bool         `json:"has_more"`
}

// directoryHandler serves DirectoryPath.
func (s *Server) directoryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			historyError(w, http.StatusMethodNotAllowed, "Only GET searches the directory.")
			return
		}
		if r.TLS == nil {
			historyError(w, http.StatusForbidden, "The directory is only served over TLS.")
			return
		}
		q, page, perPage, bad := dirAPIQuery(r)
		if bad != "" {
			historyError(w, http.StatusBadRequest, bad)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if p := s.basicLogin(ctx, w, r, "directory", s.authn.Plain); p == nil {
			return
		}
		// One more than the page, to tell whether more remain.
		q.Offset, q.Limit = (page-1)*perPage, perPage+1
		ls, err := s.Dir.SearchListings(ctx, q)
		if err != nil {
			s.Logger.Error("directory: search failed", "err", err)
			historyError(w, http.StatusServiceUnavailable, "The directory cannot be searched at the moment, try again later.")
			return
		}
		ans := dirAPIAnswer{Items: make([]dirAPIItem, 0, min(len(ls), perPage)), Page: page, PerPage: perPage}
		if len(ls) > perPage {
			ans.HasMore, ls = true, ls[:perPage]
		}
		for _, l := range ls {
			it := dirAPIItem{Address: l.Address, Kind: string(l.Kind), NationalID: l.NationalID,
				FirstName: l.FirstName, LastName: l.LastName, Profession: l.Profession, ProfessionLabel: l.ProfessionName,
				Specialty: l.Specialty, SpecialtyLabel: l.SpecialtyName, Organisation: l.Organisation, City: l.City, Local: l.Local}
			if it.ProfessionLabel == "" {
				it.ProfessionLabel = directory.Professions[l.Profession]
			}
			if it.SpecialtyLabel == "" {
				it.SpecialtyLabel = directory.Specialties[l.Specialty]
			}
			ans.Items = append(ans.Items, it)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(ans)
	})
}

// dirAPIQuery reads the parameters, or says in a sentence what is wrong.
func dirAPIQuery(r *http.Request) (q directory.ListingQuery, page, perPage int, bad string) {
	v := r.URL.Query()
	q = directory.ListingQuery{Text: v.Get("q"), Mail: v.Get("mail"), Name: v.Get("name"),
		Profession: v.Get("profession"), City: v.Get("city"), Organisation: v.Get("organisation")}
	for _, s := range []string{q.Text, q.Mail, q.Name, q.Profession, q.City, q.Organisation} {
		if len(s) > 200 {
			return q, 0, 0, "A search parameter is longer than 200 characters."
		}
	}
	if q.Text == "" && q.Mail == "" && q.Name == "" && q.Profession == "" && q.City == "" && q.Organisation == "" {
		return q, 0, 0, "Give what to search: q (words), or mail, name, profession, city or organisation."
	}
	page, perPage = 1, dirAPIDefaultPerPage
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dirAPIMaxPage {
			return q, 0, 0, "The page parameter must be a number from 1 to " + strconv.Itoa(dirAPIMaxPage) + "."
		}
		page = n
	}
	if s := v.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dirAPIMaxPerPage {
			return q, 0, 0, "The per_page parameter must be a number from 1 to " + strconv.Itoa(dirAPIMaxPerPage) + "."
		}
		perPage = n
	}
	return q, page, perPage, ""
}
