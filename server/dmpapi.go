package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// The reading API of the embedded DMP vault (SPEC §7, issue #28 item 6,
// docs/dmp.md), on the [listen] https listener:
//
//	GET /api/v1/patients/{ins}/documents            the record's documents
//	GET /api/v1/patients/{ins}/documents/{id}       one document's content
//
// with ?emergency=1 for an emergency ("bris de glace") read.
//
// Authentication is strong, as for reading a real DMP (CPS or e-CPS:
// docs/domain.md §5), and as IMAP's: a TLS client certificate given
// during the handshake (auth.Authenticator.External: [auth] external) or
// `Authorization: Bearer TOKEN` (auth.Authenticator.Bearer: [auth.oidc]).
// A password (HTTP Basic, as /api/v1/history takes) is not accepted here.
// The reader is the directory entry of the mailbox that logged in: a
// professional's profession and specialty decide under the grid
// (dmp.Grid), a patient's mailbox reads its own record.
//
// Answers:
//   - 401 with `WWW-Authenticate: Bearer` when no credential is given or
//     it is refused;
//   - 403 with {"error": sentence} when the grid or the patient refuses
//     (a type the profession may not read, a professional the patient
//     blocked, a patient asking for another record);
//   - 404 for an unknown document, another patient's, and one the
//     reader may not know exists: hidden from professionals (MASQUE_PS)
//     or not yet visible to the patient (INVISIBLE_PATIENT), so that the
//     answer does not tell that a masked document is there;
//   - the list holds only the documents the reader may read.
//
// Every list and read is an audit event (dmp.list, dmp.read), its refusals
// too (outcome refused), with the reader, the document and the patient's
// INS, never the content; an emergency read is also dmp.emergency. They
// concern the patient's mailbox, whose access history shows them.

// DMPDocumentsPath is the prefix of the API.
const DMPDocumentsPath = "/api/v1/patients/"

// validateGrid checks the grid file of [dmp] grid (DMPConfig, in
// dmpconfig.go): a grid with a mistake stops the configuration, naming it.
func (c DMPConfig) validateGrid() []error {
	if c.Grid == "" {
		return nil
	}
	if _, err := dmp.LoadGrid(c.Grid); err != nil {
		return []error{fmt.Errorf("dmp.grid: %w", err)}
	}
	return nil
}

// dmpState is the server's grid, loaded once.
type dmpState struct {
	once sync.Once
	grid *dmp.Grid
	err  error
}

// DMPGrid returns the authorization grid of [dmp] grid, or the default
// one.
func (s *Server) DMPGrid() (*dmp.Grid, error) {
	s.dmp.once.Do(func() {
		if f := s.Config.DMP.Grid; f != "" {
			s.dmp.grid, s.dmp.err = dmp.LoadGrid(f)
			return
		}
		s.dmp.grid = dmp.DefaultGrid()
	})
	return s.dmp.grid, s.dmp.err
}

// DMPVault returns the embedded vault over the server's store, applying
// its grid at deposit and recording its refusals with the server's
// events.
func (s *Server) DMPVault() (*dmp.VaultConnector, error) {
	g, err := s.DMPGrid()
	if err != nil {
		return nil, err
	}
	return &dmp.VaultConnector{Store: s.Store, Grid: g, Audit: func(r storage.AuditRecord) {
		if r.Account == "" {
			r.Account = s.patientAccount(context.Background(), r.Details["ins"])
		}
		s.events.Record(r)
	}}, nil
}

func (s *Server) dmpRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+DMPDocumentsPath+"{ins}/documents", s.dmpList)
	mux.HandleFunc("GET "+DMPDocumentsPath+"{ins}/documents/{id}", s.dmpRead)
}

// dmpDocument is a document as the list shows it.
type dmpDocument struct {
	ID           string   `json:"id"`
	UniqueID     string   `json:"unique_id"`
	Title        string   `json:"title"`
	TypeCode     string   `json:"type_code"`
	TypeDisplay  string   `json:"type_display,omitempty"`
	Author       string   `json:"author,omitempty"`
	AuthorID     string   `json:"author_id,omitempty"`
	Institution  string   `json:"institution,omitempty"`
	CreationTime string   `json:"creation_time,omitempty"`
	DepositedAt  string   `json:"deposited_at"`
	Size         int64    `json:"size"`
	MimeType     string   `json:"mime_type"`
	Version      int      `json:"version"`
	Visibility   []string `json:"visibility,omitempty"`
	// Emergency: shown only through the emergency read.
	Emergency bool `json:"emergency,omitempty"`
}

type dmpListAnswer struct {
	Patient   string        `json:"patient"`
	Documents []dmpDocument `json:"documents"`
}

// dmpRequest is what every request of the API first establishes.
type dmpRequest struct {
	p       *auth.Principal
	reader  dmp.Reader
	ins     string
	account string // the patient's mailbox, for the events
	grid    *dmp.Grid
	ctl     dmp.PatientControls
}

// dmpBegin authenticates the request and reads the record's controls; it
// answered already when it returns false.
func (s *Server) dmpBegin(w http.ResponseWriter, r *http.Request) (*dmpRequest, bool) {
	w.Header().Set("Cache-Control", "no-store") // health data: no cache keeps it
	if r.TLS == nil {
		historyError(w, http.StatusForbidden, "The DMP is only served over TLS.")
		return nil, false
	}
	ctx := r.Context()
	p, ok := s.dmpAuthenticate(w, r)
	if !ok {
		return nil, false
	}
	ins, err := directory.ParseINS(r.PathValue("ins"))
	if err != nil {
		historyError(w, http.StatusBadRequest, "The patient's identifier in the address is not a valid INS: "+err.Error())
		return nil, false
	}
	q := &dmpRequest{p: p, ins: ins, account: s.patientAccount(ctx, ins)}
	e, err := s.Dir.Lookup(ctx, p.Address)
	if err != nil {
		s.Logger.Error("dmp: directory lookup", "address", p.Address, "err", err)
		historyError(w, http.StatusServiceUnavailable, "The directory cannot be read at the moment, try again later.")
		return nil, false
	}
	q.reader = dmp.Reader{Address: e.Address, Emergency: emergencyAsked(r)}
	if e.Kind == directory.KindPatient {
		q.reader.Patient = e.NationalID
	} else if e.Kind == directory.KindPersonal {
		q.reader.NationalID, q.reader.Profession, q.reader.Specialty = e.NationalID, e.Profession, e.Specialty
	}
	if q.grid, err = s.DMPGrid(); err != nil {
		s.Logger.Error("dmp: the authorization grid cannot be loaded", "err", err)
		historyError(w, http.StatusServiceUnavailable, "The DMP authorization grid cannot be loaded: the operator must correct [dmp] grid.")
		return nil, false
	}
	if q.ctl, err = s.Store.Controls(ctx, ins); err != nil {
		s.Logger.Error("dmp: patient controls", "err", err)
		historyError(w, http.StatusServiceUnavailable, "The patient's record cannot be read at the moment, try again later.")
		return nil, false
	}
	return q, true
}

func emergencyAsked(r *http.Request) bool {
	switch strings.ToLower(r.URL.Query().Get("emergency")) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// dmpAuthenticate logs the request in with its bearer token or its client
// certificate; it answered 401 or 503 when it returns false.
func (s *Server) dmpAuthenticate(w http.ResponseWriter, r *http.Request) (*auth.Principal, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	var p *auth.Principal
	var err error
	var mech auth.Mechanism
	authz := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(authz, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "":
		mech = auth.MechOAuth
		p, err = s.authn.Bearer(ctx, strings.TrimSpace(token), "", r.RemoteAddr)
	case authz != "":
		dmpChallenge(w, "The DMP is read with a client certificate or a bearer token (Authorization: Bearer), not with a password.")
		return nil, false
	case len(r.TLS.PeerCertificates) > 0:
		mech = auth.MechExternal
		p, err = s.authn.External(ctx, r.TLS.PeerCertificates, "", r.RemoteAddr)
	default:
		dmpChallenge(w, "Log in with a TLS client certificate (a CPS or a certificate of this operator) or a bearer token (Authorization: Bearer).")
		return nil, false
	}
	s.auditDMPLogin(mech, p, err, r.RemoteAddr)
	if err != nil {
		if refusal.Is(err, refusal.AuthFailed) {
			msg := "The credential is not accepted."
			var re *refusal.Error
			if errors.As(err, &re) && re.Text != "" {
				msg = re.Text
			}
			dmpChallenge(w, msg)
			return nil, false
		}
		s.Logger.Error("dmp: authentication unavailable", "remote", r.RemoteAddr, "err", err)
		historyError(w, http.StatusServiceUnavailable, "Authentication is temporarily unavailable, try again later.")
		return nil, false
	}
	return p, true
}

// dmpChallenge answers 401 with the Bearer challenge (RFC 6750 §3).
func dmpChallenge(w http.ResponseWriter, sentence string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="carepost"`)
	historyError(w, http.StatusUnauthorized, sentence)
}

// auditDMPLogin records a login to the API (https.login, service dmp).
func (s *Server) auditDMPLogin(mech auth.Mechanism, p *auth.Principal, err error, source string) {
	s.auditHTTPSLoginBy("dmp", mech, "", p, err, source)
}

// patientAccount is the patient's mailbox here, "" if none.
func (s *Server) patientAccount(ctx context.Context, ins string) string {
	if ins == "" || s.Dir == nil {
		return ""
	}
	addrs, err := s.Dir.ByNationalID(ctx, ins)
	if err != nil || len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

// dmpEvent records an event of the API.
func (s *Server) dmpEvent(q *dmpRequest, action, object, outcome string, details map[string]string) {
	if details == nil {
		details = map[string]string{}
	}
	details["ins"] = q.ins
	if q.reader.Emergency {
		details["emergency"] = "asked"
	}
	actor, mech, source := q.p.Actor()
	s.events.Record(storage.AuditRecord{Actor: actor, Mechanism: mech, Source: source, Action: action, Object: object,
		Outcome: outcome, Details: details, Account: q.account})
}

// recordAccess: the reader's right to the record as a whole, before any
// document: a patient reads only their own, a professional must be one,
// and one the patient blocked reads only in an emergency the patient
// allows. "" when allowed.
func recordAccess(q *dmpRequest) string {
	r := q.reader
	switch {
	case r.Patient != "":
		if r.Patient != q.ins {
			return "A patient reads only their own record."
		}
		return ""
	case r.NationalID == "" && r.Profession == "":
		return "Only a health professional's personal mailbox, or the patient's, reads a record."
	case q.ctl.IsBlocked(r.NationalID) && !r.Emergency:
		return "The patient has blocked your access to their record."
	case q.ctl.IsBlocked(r.NationalID) && !q.ctl.Emergency:
		return "The patient has blocked your access to their record, and turned emergency access off."
	}
	return ""
}

func (s *Server) dmpList(w http.ResponseWriter, r *http.Request) {
	q, ok := s.dmpBegin(w, r)
	if !ok {
		return
	}
	object := "dmp:" + q.ins
	if why := recordAccess(q); why != "" {
		s.dmpEvent(q, "dmp.list", object, audit.OutcomeRefused, map[string]string{"reason": why})
		historyError(w, http.StatusForbidden, why)
		return
	}
	docs, err := s.Store.Documents(r.Context(), q.ins)
	if err != nil {
		s.Logger.Error("dmp: list", "err", err)
		historyError(w, http.StatusServiceUnavailable, "The patient's record cannot be read at the moment, try again later.")
		return
	}
	ans := dmpListAnswer{Patient: q.ins, Documents: []dmpDocument{}}
	var shown, emergency []string
	for i := range docs {
		d := &docs[i]
		dec := q.grid.Decide(q.reader, d, q.ctl)
		if !dec.Allowed {
			continue
		}
		item := dmpDocumentOf(q.grid, d)
		item.Emergency = dec.Emergency
		ans.Documents = append(ans.Documents, item)
		shown = append(shown, d.ID)
		if dec.Emergency {
			emergency = append(emergency, d.ID)
		}
	}
	if len(emergency) > 0 {
		s.dmpEvent(q, "dmp.emergency", object, audit.OutcomeOK, map[string]string{"documents": strings.Join(emergency, ",")})
	}
	s.dmpEvent(q, "dmp.list", object, audit.OutcomeOK, map[string]string{"documents": strings.Join(shown, ",")})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}

func dmpDocumentOf(g *dmp.Grid, d *dmp.StoredDocument) dmpDocument {
	doc := &d.Document
	out := dmpDocument{ID: d.ID, UniqueID: doc.UniqueID, Title: doc.Title, TypeCode: doc.TypeCode.Code,
		TypeDisplay: doc.TypeCode.Display, DepositedAt: d.DepositedAt.UTC().Format(time.RFC3339),
		Size: doc.Size, MimeType: doc.MimeType, Version: d.Version}
	if out.TypeDisplay == "" {
		out.TypeDisplay = g.TypeLabel(doc.TypeCode.Code)
	}
	if out.MimeType == "" {
		out.MimeType = "application/octet-stream"
	}
	if !doc.CreationTime.IsZero() {
		out.CreationTime = doc.CreationTime.UTC().Format(time.RFC3339)
	}
	if len(doc.Authors) > 0 {
		a := doc.Authors[0]
		out.Author = strings.TrimSpace(a.FirstName + " " + a.LastName)
		out.AuthorID, out.Institution = a.PersonID, a.InstitutionName
	}
	for _, v := range []struct {
		f    dmp.Visibility
		code string
	}{{dmp.InvisiblePatient, dmp.CodeInvisiblePatient}, {dmp.InvisibleLegalRepresentatives, dmp.CodeInvisibleLegalRepresentatives},
		{dmp.HiddenFromProfessionals, dmp.CodeHiddenFromProfessionals}} {
		if doc.Visibility&v.f != 0 {
			out.Visibility = append(out.Visibility, v.code)
		}
	}
	return out
}

func (s *Server) dmpRead(w http.ResponseWriter, r *http.Request) {
	q, ok := s.dmpBegin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	notFound := func(reason string) {
		s.dmpEvent(q, "dmp.read", id, audit.OutcomeRefused, map[string]string{"reason": reason})
		historyError(w, http.StatusNotFound, "There is no such document in this patient's record.")
	}
	if why := recordAccess(q); why != "" {
		s.dmpEvent(q, "dmp.read", id, audit.OutcomeRefused, map[string]string{"reason": why})
		historyError(w, http.StatusForbidden, why)
		return
	}
	d, err := s.Store.Document(r.Context(), id)
	switch {
	case errors.Is(err, dmp.ErrNoDocument):
		notFound("no such document")
		return
	case err != nil:
		s.Logger.Error("dmp: read", "err", err)
		historyError(w, http.StatusServiceUnavailable, "The patient's record cannot be read at the moment, try again later.")
		return
	case d.PatientINS != q.ins:
		notFound("a document of another patient's record")
		return
	}
	dec := q.grid.Decide(q.reader, &d, q.ctl)
	if !dec.Allowed {
		if dec.Hidden {
			notFound(dec.Reason)
			return
		}
		s.dmpEvent(q, "dmp.read", id, audit.OutcomeRefused, map[string]string{"reason": dec.Reason, "type": d.Document.TypeCode.Code})
		historyError(w, http.StatusForbidden, dec.Reason)
		return
	}
	content, err := s.Store.DocumentContent(r.Context(), id)
	if err != nil {
		s.Logger.Error("dmp: read content", "document", id, "err", err)
		s.dmpEvent(q, "dmp.read", id, audit.OutcomeFailed, nil)
		historyError(w, http.StatusServiceUnavailable, "The document cannot be read at the moment, try again later.")
		return
	}
	details := map[string]string{"type": d.Document.TypeCode.Code, "version": fmt.Sprint(d.Version)}
	if dec.Emergency {
		s.dmpEvent(q, "dmp.emergency", id, audit.OutcomeOK, map[string]string{"type": d.Document.TypeCode.Code})
		details["emergency"] = "used"
	}
	s.dmpEvent(q, "dmp.read", id, audit.OutcomeOK, details)
	ct := d.Document.MimeType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": dmpFileName(&d)}))
	// A document is never run by the browser in the server's origin (an
	// HTML or SVG document could hold a script).
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("X-Carepost-Document-Version", fmt.Sprint(d.Version))
	if d.ReplacedBy != "" {
		h.Set("X-Carepost-Replaced-By", d.ReplacedBy)
	}
	w.Write(content)
}

// dmpFileName is the name a document is saved under: its file name in
// the package, else its ID.
func dmpFileName(d *dmp.StoredDocument) string {
	name := path.Base(strings.ReplaceAll(d.Document.URI, "\\", "/"))
	if name == "" || name == "." || name == "/" {
		name = d.ID
		if exts, _ := mime.ExtensionsByType(d.Document.MimeType); len(exts) > 0 {
			name += exts[0]
		}
	}
	return name
}
