package dmp

import (
	"crypto/rand"
	"crypto/sha1" // #nosec: the XDS/FHIR document hash is SHA-1 (FHIR R4 Attachment.hash)
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// fhirBundle is the ITI-65 Provide Document Bundle that MHDConnector sends
// (mhd.go; FHIR R4 JSON, only the fields used), built from a Submission,
// and the Bundle or OperationOutcome of the reply.
type fhirBundle struct {
	ResourceType string      `json:"resourceType"`
	Meta         *fhirMeta   `json:"meta,omitempty"`
	Type         string      `json:"type"`
	Timestamp    string      `json:"timestamp,omitempty"`
	Entry        []fhirEntry `json:"entry,omitempty"`
	Issue        []fhirIssue `json:"issue,omitempty"` // when the reply is an OperationOutcome
}

type fhirMeta struct {
	Profile []string `json:"profile,omitempty"`
}

type fhirEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  *fhirRequest    `json:"request,omitempty"`
	Response *fhirResponse   `json:"response,omitempty"`
}

type fhirRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type fhirResponse struct {
	Status   string          `json:"status"`
	Location string          `json:"location,omitempty"`
	Outcome  json.RawMessage `json:"outcome,omitempty"`
}

type fhirCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type fhirConcept struct {
	Coding []fhirCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type fhirIdentifier struct {
	Use    string `json:"use,omitempty"`
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type fhirReference struct {
	Reference  string          `json:"reference,omitempty"`
	Type       string          `json:"type,omitempty"`
	Identifier *fhirIdentifier `json:"identifier,omitempty"`
	Display    string          `json:"display,omitempty"`
}

type fhirExtension struct {
	URL             string          `json:"url"`
	ValueIdentifier *fhirIdentifier `json:"valueIdentifier,omitempty"`
}

type fhirHumanName struct {
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

// fhirContained is a Practitioner or an Organization contained in the List
// or a DocumentReference (the author: FHIR R4 references.html#contained).
type fhirContained struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Identifier   []fhirIdentifier `json:"identifier,omitempty"`
	Name         json.RawMessage  `json:"name,omitempty"` // HumanName[] or string
}

type fhirList struct {
	ResourceType string           `json:"resourceType"`
	Meta         *fhirMeta        `json:"meta,omitempty"`
	Contained    []fhirContained  `json:"contained,omitempty"`
	Extension    []fhirExtension  `json:"extension,omitempty"`
	Identifier   []fhirIdentifier `json:"identifier"`
	Status       string           `json:"status"`
	Mode         string           `json:"mode"`
	Title        string           `json:"title,omitempty"`
	Code         fhirConcept      `json:"code"`
	Subject      fhirReference    `json:"subject"`
	Date         string           `json:"date,omitempty"`
	Source       *fhirReference   `json:"source,omitempty"`
	Entry        []fhirListEntry  `json:"entry"`
}

type fhirListEntry struct {
	Item fhirReference `json:"item"`
}

type fhirAttachment struct {
	ContentType string `json:"contentType"`
	Language    string `json:"language,omitempty"`
	URL         string `json:"url"`
	Size        int64  `json:"size"`
	Hash        string `json:"hash"`
	Title       string `json:"title,omitempty"`
	Creation    string `json:"creation,omitempty"`
}

type fhirContent struct {
	Attachment fhirAttachment `json:"attachment"`
	Format     *fhirCoding    `json:"format,omitempty"`
}

type fhirPeriod struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type fhirContext struct {
	Period *fhirPeriod `json:"period,omitempty"`
}

type fhirRelatesTo struct {
	Code   string        `json:"code"`
	Target fhirReference `json:"target"`
}

type fhirDocumentReference struct {
	ResourceType     string          `json:"resourceType"`
	Meta             *fhirMeta       `json:"meta,omitempty"`
	Contained        []fhirContained `json:"contained,omitempty"`
	MasterIdentifier fhirIdentifier  `json:"masterIdentifier"`
	Status           string          `json:"status"`
	Type             *fhirConcept    `json:"type,omitempty"`
	Category         []fhirConcept   `json:"category,omitempty"`
	Subject          fhirReference   `json:"subject"`
	Date             string          `json:"date,omitempty"`
	Author           []fhirReference `json:"author,omitempty"`
	Description      string          `json:"description,omitempty"`
	SecurityLabel    []fhirConcept   `json:"securityLabel,omitempty"`
	RelatesTo        []fhirRelatesTo `json:"relatesTo,omitempty"`
	Content          []fhirContent   `json:"content"`
	Context          *fhirContext    `json:"context,omitempty"`
}

type fhirBinary struct {
	ResourceType string `json:"resourceType"`
	ContentType  string `json:"contentType"`
	Data         string `json:"data"`
}

type fhirIssue struct {
	Severity    string       `json:"severity"`
	Code        string       `json:"code"`
	Details     *fhirConcept `json:"details,omitempty"`
	Diagnostics string       `json:"diagnostics,omitempty"`
	Location    []string     `json:"location,omitempty"`
	Expression  []string     `json:"expression,omitempty"`
}

// bundlePlan says which request entries are which document's: docRef[k]
// and binary[k] are the entry indexes of the k-th document sent.
type bundlePlan struct {
	entries int
	docRef  []int
	binary  []int
}

// buildBundle writes the ITI-65 transaction Bundle of the documents idx of
// sub.
func (c *MHDConnector) buildBundle(sub *Submission, by Depositor, idx []int) ([]byte, bundlePlan, error) {
	now := time.Now().UTC()
	submitted := sub.Submitted
	if submitted.IsZero() {
		submitted = now
	}
	ins := sub.PatientINS
	if ins == "" && len(sub.Documents) > 0 {
		ins = sub.Documents[0].PatientINS
	}
	if ins == "" {
		return nil, bundlePlan{}, errors.New("dmp: mhd: the submission has no patient INS")
	}
	listID := mhdUUID()
	entries := []fhirEntry{{FullURL: "urn:uuid:" + listID, Request: &fhirRequest{Method: "POST", URL: "List"}}}
	plan := bundlePlan{}
	list := fhirList{
		ResourceType: "List",
		Meta:         &fhirMeta{Profile: []string{mhdSubmissionSetProfile}},
		Status:       "current",
		Mode:         "working",
		Title:        sub.Title,
		Code:         fhirConcept{Coding: []fhirCoding{{System: mhdListTypes, Code: "submissionset"}}},
		Subject:      patientReference(ins),
		Date:         fhirTime(submitted),
	}
	// The submission set's uniqueId: the XDM one, or for plain
	// attachments one derived from the documents' (2.25: a UUID as an
	// OID, ITU-T X.667), so that a second deposit of the same
	// attachments carries the same identifier (idempotence).
	setID := sub.UniqueID
	if setID == "" || len(idx) != len(sub.Documents) {
		var ids []string
		for _, i := range idx {
			ids = append(ids, documentUniqueID(sub, i))
		}
		setID = derivedOID("submission-set\x00" + setID + "\x00" + strings.Join(ids, "\x00"))
	}
	list.Identifier = []fhirIdentifier{{Use: "usual", System: fhirURISystem, Value: uriOf(setID)}}
	source := sub.SourceID
	if source == "" {
		source = c.sourceID
	}
	if source != "" {
		list.Extension = []fhirExtension{{URL: mhdSourceIDExtension, ValueIdentifier: &fhirIdentifier{Value: uriOf(source)}}}
	}
	authors := sub.Authors
	if len(authors) == 0 && by.NationalID != "" {
		authors = []Author{{PersonID: by.NationalID, InstitutionName: by.Organisation}}
	}
	if len(authors) > 0 {
		contained, refs := authorResources(authors[:1])
		list.Contained = contained
		list.Source = &refs[0]
	}

	for _, i := range idx {
		d := &sub.Documents[i]
		refURL, binURL := "urn:uuid:"+mhdUUID(), "urn:uuid:"+mhdUUID()
		list.Entry = append(list.Entry, fhirListEntry{Item: fhirReference{Reference: refURL}})
		docRef, err := documentReference(sub, i, ins, binURL, now)
		if err != nil {
			return nil, bundlePlan{}, err
		}
		raw, err := json.Marshal(docRef)
		if err != nil {
			return nil, bundlePlan{}, err
		}
		plan.docRef = append(plan.docRef, len(entries))
		entries = append(entries, fhirEntry{FullURL: refURL, Resource: raw, Request: &fhirRequest{Method: "POST", URL: "DocumentReference"}})
		bin, err := json.Marshal(fhirBinary{ResourceType: "Binary", ContentType: mimeTypeOf(d), Data: base64.StdEncoding.EncodeToString(d.Content)})
		if err != nil {
			return nil, bundlePlan{}, err
		}
		plan.binary = append(plan.binary, len(entries))
		entries = append(entries, fhirEntry{FullURL: binURL, Resource: bin, Request: &fhirRequest{Method: "POST", URL: "Binary"}})
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return nil, bundlePlan{}, err
	}
	entries[0].Resource = raw
	plan.entries = len(entries)
	b, err := json.Marshal(fhirBundle{
		ResourceType: "Bundle",
		Meta:         &fhirMeta{Profile: []string{MHDProvideBundleProfile}},
		Type:         "transaction",
		Timestamp:    fhirTime(now),
		Entry:        entries,
	})
	return b, plan, err
}

// documentReference maps one document's XDS metadata to a DocumentReference
// (IHE MHD 4.2 §4.5.1, "XDS DocumentEntry to DocumentReference").
func documentReference(sub *Submission, i int, ins, binURL string, now time.Time) (fhirDocumentReference, error) {
	d := &sub.Documents[i]
	sum := sha1.Sum(d.Content)
	if d.PatientINS != "" && d.PatientINS != ins {
		return fhirDocumentReference{}, fmt.Errorf("dmp: mhd: document %q is for another patient than its submission", d.Title)
	}
	lang := d.Language
	if lang == "" {
		lang = "fr-FR"
	}
	r := fhirDocumentReference{
		ResourceType:     "DocumentReference",
		Meta:             &fhirMeta{Profile: []string{mhdDocumentRefProfile}},
		MasterIdentifier: uniqueIDIdentifier(documentUniqueID(sub, i)),
		Status:           "current",
		Subject:          patientReference(ins),
		Date:             fhirTime(now),
		Content: []fhirContent{{Attachment: fhirAttachment{
			ContentType: mimeTypeOf(d),
			Language:    lang,
			URL:         binURL,
			Size:        int64(len(d.Content)),
			Hash:        base64.StdEncoding.EncodeToString(sum[:]),
			Title:       d.Title,
			Creation:    fhirTime(d.CreationTime),
		}}},
	}
	if d.TypeCode.Code != "" {
		t := d.TypeCode
		if t.Scheme == "" {
			t.Scheme = loincOID // the typeCode is LOINC (docs/domain.md §5)
		}
		r.Type = &fhirConcept{Coding: []fhirCoding{coding(t)}}
	}
	if d.ClassCode.Code != "" {
		r.Category = []fhirConcept{{Coding: []fhirCoding{coding(d.ClassCode)}}}
	}
	if d.FormatCode.Code != "" {
		f := coding(d.FormatCode)
		r.Content[0].Format = &f
	}
	authors := d.Authors
	if len(authors) == 0 {
		authors = sub.Authors
	}
	r.Contained, r.Author = authorResources(authors)
	r.SecurityLabel = securityLabels(d)
	if !d.ServiceStart.IsZero() || !d.ServiceStop.IsZero() {
		r.Context = &fhirContext{Period: &fhirPeriod{Start: fhirTime(d.ServiceStart), End: fhirTime(d.ServiceStop)}}
	}
	if d.Replaces != "" {
		target := uniqueIDIdentifier(d.Replaces)
		r.RelatesTo = []fhirRelatesTo{{Code: "replaces", Target: fhirReference{Type: "DocumentReference", Identifier: &target}}}
	}
	return r, nil
}

// The codes of documents refused before sending (the same codes as the
// XDM reader's, docs/dmp.md).
const (
	mhdCodeHash    = "HASH_MISMATCH"
	mhdCodeSize    = "SIZE_MISMATCH"
	mhdCodePatient = "PATIENT_MISMATCH"
)

// mhdPrecheck refuses a document whose content does not match its
// metadata, or whose patient is not its submission's.
func mhdPrecheck(sub *Submission, i int) (code, reason string) {
	d := &sub.Documents[i]
	sum := sha1.Sum(d.Content)
	switch {
	case d.SHA1 != "" && !strings.EqualFold(d.SHA1, hex.EncodeToString(sum[:])):
		return mhdCodeHash, "The document's content does not match the SHA-1 hash of its metadata."
	case d.Size != 0 && d.Size != int64(len(d.Content)):
		return mhdCodeSize, "The document's content does not match the size of its metadata."
	case d.PatientINS != "" && sub.PatientINS != "" && d.PatientINS != sub.PatientINS:
		return mhdCodePatient, "The document is for another patient than the rest of the submission."
	}
	return "", ""
}

// patientReference is a logical reference to the patient by INS (FHIR R4
// references.html#logical; the system of the INS-NIR, docs/domain.md §2).
func patientReference(ins string) fhirReference {
	return fhirReference{Type: "Patient", Identifier: &fhirIdentifier{System: "urn:oid:" + insNIROID, Value: ins}}
}

// authorResources contains one Practitioner per author with a national
// identifier (RPPS/ADELI system, docs/domain.md §2), and one Organization
// per author's structure, and returns the references to them.
func authorResources(authors []Author) ([]fhirContained, []fhirReference) {
	var contained []fhirContained
	var refs []fhirReference
	seen := map[string]bool{}
	for _, a := range authors {
		if a.PersonID != "" || a.LastName != "" {
			id := "author" + strconv.Itoa(len(contained)+1)
			p := fhirContained{ResourceType: "Practitioner", ID: id}
			if a.PersonID != "" {
				p.Identifier = []fhirIdentifier{{System: "urn:oid:" + professionalIDOID, Value: a.PersonID}}
			}
			if a.LastName != "" || a.FirstName != "" {
				n := fhirHumanName{Family: a.LastName}
				if a.FirstName != "" {
					n.Given = []string{a.FirstName}
				}
				p.Name, _ = json.Marshal([]fhirHumanName{n})
			}
			contained = append(contained, p)
			refs = append(refs, fhirReference{Reference: "#" + id})
		}
		key := a.InstitutionID + "\x00" + a.InstitutionName
		if (a.InstitutionID != "" || a.InstitutionName != "") && !seen[key] {
			seen[key] = true
			id := "author" + strconv.Itoa(len(contained)+1)
			o := fhirContained{ResourceType: "Organization", ID: id}
			if a.InstitutionID != "" {
				o.Identifier = []fhirIdentifier{{System: "urn:oid:" + structureIDOID, Value: a.InstitutionID}}
			}
			if a.InstitutionName != "" {
				o.Name, _ = json.Marshal(a.InstitutionName)
			}
			contained = append(contained, o)
			refs = append(refs, fhirReference{Reference: "#" + id})
		}
	}
	return contained, refs
}

// securityLabels carries the confidentialityCode: the HL7 v3 level (N when
// none is given) and the TRE_A07 codes, those of Visibility included
// (docs/domain.md §5).
func securityLabels(d *Document) []fhirConcept {
	var out []fhirConcept
	have := map[string]bool{}
	level := false
	for _, c := range d.Confidentiality {
		if c.Code == "" {
			continue
		}
		cd := coding(c)
		if cd.System == fhirV3Confidentiality {
			level = true
		}
		have[cd.System+"|"+cd.Code] = true
		out = append(out, fhirConcept{Coding: []fhirCoding{cd}})
	}
	if !level {
		out = append([]fhirConcept{{Coding: []fhirCoding{{System: fhirV3Confidentiality, Code: "N"}}}}, out...)
	}
	for _, f := range []struct {
		flag Visibility
		code string
	}{
		{InvisiblePatient, CodeInvisiblePatient},
		{InvisibleLegalRepresentatives, CodeInvisibleLegalRepresentatives},
		{HiddenFromProfessionals, CodeHiddenFromProfessionals},
	} {
		sys := "urn:oid:" + TREA07
		if d.Visibility&f.flag != 0 && !have[sys+"|"+f.code] {
			out = append(out, fhirConcept{Coding: []fhirCoding{{System: sys, Code: f.code}}})
		}
	}
	return out
}

// coding maps an XDS code (its scheme an OID) to a FHIR Coding (its system
// a URI: the FHIR one for the well-known systems, urn:oid: otherwise).
func coding(c Code) fhirCoding {
	return fhirCoding{System: fhirSystem(c.Scheme), Code: c.Code, Display: c.Display}
}

func fhirSystem(scheme string) string {
	switch s := strings.TrimPrefix(scheme, "urn:oid:"); s {
	case "":
		return ""
	case loincOID:
		return fhirLOINC
	case v3ConfidentialityOID:
		return fhirV3Confidentiality
	case iheFormatCodeOID:
		return fhirIHEFormatCode
	default:
		if isOID(s) {
			return "urn:oid:" + s
		}
		return scheme
	}
}

// uniqueIDIdentifier writes an XDS uniqueId as a FHIR identifier (IHE MHD
// 4.2 "UniqueIdIdentifier"): an OID or UUID as a URI of system
// urn:ietf:rfc:3986; an "OID^extension" (a CDA II root and extension)
// as the extension within the system of its root.
func uniqueIDIdentifier(id string) fhirIdentifier {
	if root, ext, ok := strings.Cut(id, "^"); ok && isOID(root) && ext != "" {
		return fhirIdentifier{System: "urn:oid:" + root, Value: ext}
	}
	return fhirIdentifier{System: fhirURISystem, Value: uriOf(id)}
}

func uriOf(id string) string {
	switch {
	case isOID(id):
		return "urn:oid:" + id
	case uuidRe.MatchString(id):
		return "urn:uuid:" + strings.ToLower(id)
	}
	return id
}

var (
	oidRe  = regexp.MustCompile(`^[0-2](\.(0|[1-9][0-9]*))+$`)
	uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func isOID(s string) bool { return len(s) <= 64 && oidRe.MatchString(s) }

// documentUniqueID is the document's uniqueId, or for a plain attachment
// that has none one derived from the patient and the content, so that a
// second deposit names the same document.
func documentUniqueID(sub *Submission, i int) string {
	d := &sub.Documents[i]
	if d.UniqueID != "" {
		return d.UniqueID
	}
	sum := sha1.Sum(d.Content)
	ins := d.PatientINS
	if ins == "" {
		ins = sub.PatientINS
	}
	return derivedOID("document\x00" + ins + "\x00" + hex.EncodeToString(sum[:]))
}

// derivedOID is a 2.25 OID (a UUID as an integer, ITU-T X.667 §6.3) made
// from a hash of s.
func derivedOID(s string) string {
	sum := sha256.Sum256([]byte(s))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // a name-based UUID (RFC 9562 §5.5 layout)
	b[8] = b[8]&0x3f | 0x80
	return mhdPlainAttachmentPrefix + new(big.Int).SetBytes(b).String()
}

func mhdUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails (crypto/rand.Read)
	b[6] = b[6]&0x0f | 0x40 // RFC 9562 §5.4
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func mimeTypeOf(d *Document) string {
	if d.MimeType != "" {
		return d.MimeType
	}
	return "application/octet-stream"
}

// fhirTime writes an instant (FHIR R4 datatypes.html#dateTime), "" for the
// zero time.
func fhirTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}
