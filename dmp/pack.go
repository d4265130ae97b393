package dmp

// Writing an IHE_XDM.ZIP (ITI TF-1 §16, ITI TF-3 §4.2): what practice
// software sends, what `carepost dmp pack` makes, and what the tests read
// back with ReadXDM.

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"path"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
)

// SubjectPrefix starts the subject of a message carrying an XDM package
// for the DMP (docs/domain.md §1, "Receipts"); mail clients hide it.
const SubjectPrefix = "XDM/1.0/DDM+"

// Coding schemes used when a field is left empty.
const (
	OIDLOINC           = "2.16.840.1.113883.6.1"
	oidConfidentiality = "2.16.840.1.113883.5.25" // HL7 v3 Confidentiality
	oidClassCode       = "1.2.250.1.213.1.1.4.1"  // TRE_A03-ClasseDocument
	oidFormatIHE       = "1.3.6.1.4.1.19376.1.2.3"
	oidPSNational      = "1.2.250.1.71.4.2.1" // identification nationale PP
	oidStructNational  = "1.2.250.1.71.4.2.2" // identification nationale structure
	// The facility type (TRE_R02) and practice setting schemes.
	OIDFacilityType    = "1.2.250.1.71.4.2.4"
	OIDPracticeSetting = "1.2.250.1.213.1.1.4.9"
)

// DefaultClassCode is the classCode Pack writes when none is given:
// TRE_A03 "10", compte rendu.
var DefaultClassCode = Code{Code: "10", Scheme: oidClassCode, Display: "Compte rendu"}

// FormatFor is the formatCode of a document by its media type when none
// is given: an unstructured PDF (IHE XDS-SD), else "the media type is
// enough".
func FormatFor(mimeType string) Code {
	if strings.EqualFold(mimeType, "application/pdf") {
		return Code{Code: "urn:ihe:iti:xds-sd:pdf:2008", Scheme: oidFormatIHE, Display: "Document à corps non structuré en PDF"}
	}
	return Code{Code: "urn:ihe:iti:xds:2017:mimeTypeSufficient", Scheme: oidFormatIHE, Display: "Format décrit par le type MIME"}
}

// Pack writes sub as an IHE_XDM.ZIP: INDEX.HTM, README.TXT and
// IHE_XDM/SUBSET01/ with METADATA.XML and the documents (DOC0001.PDF…,
// 8.3 names as XDM asks of media). It fills what is computed from the
// documents (size, SHA-1, URI) and, when empty, the identifiers (OIDs
// 2.25.<UUID>, ITU-T X.667), the times (now), the language (fr-FR), the
// confidentiality (N, plus the TRE_A07 codes of Visibility), the class
// code (DefaultClassCode) and the format code (FormatFor). It refuses a
// submission that could not be valid: no document, a document without
// content, title or type code, no author, or a patient INS that is not
// one. sub itself is not modified.
func Pack(sub *Submission, w io.Writer) error {
	if sub == nil || len(sub.Documents) == 0 {
		return errors.New("nothing to pack: no document")
	}
	s := *sub
	now := time.Now().UTC().Truncate(time.Second)
	ins, err := directory.ParseINS(s.PatientINS)
	if err != nil {
		return fmt.Errorf("the patient: %w", err)
	}
	s.PatientINS = ins
	if s.UniqueID == "" {
		s.UniqueID = NewOID()
	}
	if s.SourceID == "" {
		s.SourceID = NewOID()
	}
	if s.Submitted.IsZero() {
		s.Submitted = now
	}
	if len(s.Authors) == 0 && len(sub.Documents[0].Authors) > 0 {
		s.Authors = sub.Documents[0].Authors
	}
	if len(s.Authors) == 0 {
		return errors.New("the submission has no author")
	}
	s.Documents = make([]Document, len(sub.Documents))
	for i, d := range sub.Documents {
		if d.Content == nil {
			return fmt.Errorf("document %d has no content", i+1)
		}
		if strings.TrimSpace(d.Title) == "" {
			return fmt.Errorf("document %d has no title", i+1)
		}
		if d.TypeCode.Code == "" {
			return fmt.Errorf("document %q has no type code (LOINC)", d.Title)
		}
		if d.PatientINS == "" {
			d.PatientINS = ins
		} else if d.PatientINS, err = directory.ParseINS(d.PatientINS); err != nil {
			return fmt.Errorf("document %q: %w", d.Title, err)
		}
		if len(d.Authors) == 0 {
			d.Authors = s.Authors
		}
		d.EntryUUID = fmt.Sprintf("Document%02d", i+1)
		if d.UniqueID == "" {
			d.UniqueID = NewOID()
		}
		if d.MimeType == "" {
			d.MimeType = "application/octet-stream"
		}
		if d.TypeCode.Scheme == "" {
			d.TypeCode.Scheme = OIDLOINC
		}
		if d.ClassCode.Code == "" {
			d.ClassCode = DefaultClassCode
		}
		if d.FormatCode.Code == "" {
			d.FormatCode = FormatFor(d.MimeType)
		}
		if d.Language == "" {
			d.Language = "fr-FR"
		}
		if d.CreationTime.IsZero() {
			d.CreationTime = now
		}
		if d.ServiceStart.IsZero() {
			d.ServiceStart = d.CreationTime
		}
		d.Confidentiality = withVisibility(d.Confidentiality, d.Visibility)
		d.Size = int64(len(d.Content))
		sum := sha1.Sum(d.Content)
		d.SHA1 = hex.EncodeToString(sum[:])
		d.URI = fmt.Sprintf("DOC%04d%s", i+1, extFor(d))
		s.Documents[i] = d
	}

	zw := zip.NewWriter(w)
	put := func(name string, b []byte) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return err
		}
		_, err = fw.Write(b)
		return err
	}
	subset := xdmDir + "/SUBSET01/"
	if err := put("INDEX.HTM", indexHTM(&s)); err != nil {
		return err
	}
	if err := put("README.TXT", readme(&s)); err != nil {
		return err
	}
	if err := put(subset+metadataName, metadataXML(&s)); err != nil {
		return err
	}
	for _, d := range s.Documents {
		if err := put(subset+d.URI, d.Content); err != nil {
			return err
		}
	}
	return zw.Close()
}

// withVisibility adds the N level when there is none and the TRE_A07
// codes of v not listed yet.
func withVisibility(codes []Code, v Visibility) []Code {
	out := append([]Code(nil), codes...)
	has := func(c string) bool {
		for _, x := range out {
			if x.Code == c {
				return true
			}
		}
		return false
	}
	level := false
	for _, x := range out {
		switch x.Code {
		case "N", "R", "V", "U", "L", "M":
			level = true
		}
	}
	if !level {
		out = append([]Code{{Code: "N", Scheme: oidConfidentiality, Display: "Normal"}}, out...)
	}
	for _, f := range []struct {
		bit     Visibility
		code, l string
	}{
		{InvisiblePatient, CodeInvisiblePatient, "Document non visible par le patient"},
		{InvisibleLegalRepresentatives, CodeInvisibleLegalRepresentatives, "Document non visible par les représentants légaux du patient"},
		{HiddenFromProfessionals, CodeHiddenFromProfessionals, "Document masqué aux professionnels de santé"},
	} {
		if v&f.bit != 0 && !has(f.code) {
			out = append(out, Code{Code: f.code, Scheme: TREA07, Display: f.l})
		}
	}
	return out
}

// extFor is a document's file extension: from its URI or its media type.
func extFor(d Document) string {
	if e := strings.ToUpper(path.Ext(d.URI)); len(e) >= 2 && len(e) <= 4 && isAlnum(e[1:]) {
		return e
	}
	switch strings.ToLower(d.MimeType) {
	case "application/pdf":
		return ".PDF"
	case "text/xml", "application/xml", "application/hl7-v3+xml":
		return ".XML"
	case "text/plain":
		return ".TXT"
	case "image/jpeg":
		return ".JPG"
	case "image/png":
		return ".PNG"
	}
	return ".BIN"
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// NewOID returns a new unique OID, 2.25 followed by a random UUID as an
// integer (ITU-T X.667 §6.3): for uniqueId values no registry assigns.
func NewOID() string {
	b := randomUUID()
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// randomUUID is the 128 bits of a random UUID (RFC 9562 version 4).
func randomUUID() [16]byte {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant
	return b
}

// metaWriter writes the ebRIM XML with the usual prefixes.
type metaWriter struct {
	bytes.Buffer
	n int // for the ids of classifications and identifiers
}

func (m *metaWriter) esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (m *metaWriter) id(prefix string) string {
	m.n++
	return fmt.Sprintf("%s%02d", prefix, m.n)
}

func (m *metaWriter) slot(name string, values ...string) {
	fmt.Fprintf(m, "<rim:Slot name=\"%s\"><rim:ValueList>", m.esc(name))
	for _, v := range values {
		fmt.Fprintf(m, "<rim:Value>%s</rim:Value>", m.esc(v))
	}
	m.WriteString("</rim:ValueList></rim:Slot>\n")
}

func (m *metaWriter) name(s string) {
	fmt.Fprintf(m, "<rim:Name><rim:LocalizedString value=\"%s\" charset=\"UTF-8\"/></rim:Name>\n", m.esc(s))
}

func (m *metaWriter) code(scheme, object string, c Code) {
	if c.Code == "" {
		return
	}
	fmt.Fprintf(m, "<rim:Classification id=\"%s\" classificationScheme=\"%s\" classifiedObject=\"%s\" nodeRepresentation=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification\">\n",
		m.id("cl"), scheme, m.esc(object), m.esc(c.Code))
	m.slot("codingScheme", c.Scheme)
	m.name(c.Display)
	m.WriteString("</rim:Classification>\n")
}

func (m *metaWriter) author(scheme, object string, a Author) {
	fmt.Fprintf(m, "<rim:Classification id=\"%s\" classificationScheme=\"%s\" classifiedObject=\"%s\" nodeRepresentation=\"\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification\">\n",
		m.id("cl"), scheme, m.esc(object))
	if a.PersonID != "" || a.LastName != "" {
		m.slot("authorPerson", fmt.Sprintf("%s^%s^%s^^^^^^&%s&ISO^D^^^IDNPS", a.PersonID, a.LastName, a.FirstName, oidPSNational))
	}
	if a.InstitutionID != "" || a.InstitutionName != "" {
		m.slot("authorInstitution", fmt.Sprintf("%s^^^^^&%s&ISO^IDNST^^^%s", a.InstitutionName, oidStructNational, a.InstitutionID))
	}
	if a.Role != "" {
		m.slot("authorRole", a.Role)
	}
	if a.Specialty != "" {
		m.slot("authorSpecialty", a.Specialty)
	}
	m.WriteString("</rim:Classification>\n")
}

func (m *metaWriter) external(scheme, object, value, label string) {
	fmt.Fprintf(m, "<rim:ExternalIdentifier id=\"%s\" identificationScheme=\"%s\" registryObject=\"%s\" value=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier\">\n",
		m.id("ei"), scheme, m.esc(object), m.esc(value))
	m.name(label)
	m.WriteString("</rim:ExternalIdentifier>\n")
}

// metadataXML is the SubmitObjectsRequest of a filled submission.
func metadataXML(s *Submission) []byte {
	m := &metaWriter{}
	m.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
<rim:RegistryObjectList>
`)
	const set = "SubmissionSet01"
	fmt.Fprintf(m, "<rim:RegistryPackage id=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage\">\n", set)
	m.slot("submissionTime", formatDTM(s.Submitted))
	if s.Title != "" {
		m.name(s.Title)
	}
	for _, a := range s.Authors {
		m.author(schemeSetAuthor, set, a)
	}
	m.code(schemeContentType, set, s.ContentType)
	m.external(idSetUniqueID, set, s.UniqueID, "XDSSubmissionSet.uniqueId")
	m.external(idSetSourceID, set, s.SourceID, "XDSSubmissionSet.sourceId")
	m.external(idSetPatientID, set, patientCX(s.PatientINS), "XDSSubmissionSet.patientId")
	m.WriteString("</rim:RegistryPackage>\n")
	fmt.Fprintf(m, "<rim:Classification id=\"%s\" classifiedObject=\"%s\" classificationNode=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification\"/>\n",
		m.id("cl"), set, nodeSubmissionSet)

	for _, d := range s.Documents {
		id := d.EntryUUID
		fmt.Fprintf(m, "<rim:ExtrinsicObject id=\"%s\" mimeType=\"%s\" objectType=\"%s\" status=\"urn:oasis:names:tc:ebxml-regrep:StatusType:Approved\">\n",
			m.esc(id), m.esc(d.MimeType), objectTypeDocEntry)
		m.slot("creationTime", formatDTM(d.CreationTime))
		m.slot("languageCode", d.Language)
		m.slot("serviceStartTime", formatDTM(d.ServiceStart))
		if !d.ServiceStop.IsZero() {
			m.slot("serviceStopTime", formatDTM(d.ServiceStop))
		}
		m.slot("sourcePatientId", patientCX(d.PatientINS))
		m.slot("size", fmt.Sprint(d.Size))
		m.slot("hash", d.SHA1)
		m.slot("URI", d.URI)
		m.name(d.Title)
		for _, a := range d.Authors {
			m.author(schemeDocAuthor, id, a)
		}
		m.code(schemeClassCode, id, d.ClassCode)
		for _, c := range d.Confidentiality {
			m.code(schemeConfidentialty, id, c)
		}
		m.code(schemeFormatCode, id, d.FormatCode)
		m.code(schemeFacilityType, id, d.FacilityType)
		m.code(schemePracticeSet, id, d.PracticeSetting)
		m.code(schemeTypeCode, id, d.TypeCode)
		m.external(idDocPatientID, id, patientCX(d.PatientINS), "XDSDocumentEntry.patientId")
		m.external(idDocUniqueID, id, d.UniqueID, "XDSDocumentEntry.uniqueId")
		m.WriteString("</rim:ExtrinsicObject>\n")
	}
	for _, d := range s.Documents {
		fmt.Fprintf(m, "<rim:Association id=\"%s\" associationType=\"%s\" sourceObject=\"%s\" targetObject=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association\">\n",
			m.id("as"), assocHasMember, set, m.esc(d.EntryUUID))
		m.slot("SubmissionSetStatus", "Original")
		m.WriteString("</rim:Association>\n")
		if d.Replaces != "" {
			fmt.Fprintf(m, "<rim:Association id=\"%s\" associationType=\"%s\" sourceObject=\"%s\" targetObject=\"%s\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association\"/>\n",
				m.id("as"), assocRPLC, m.esc(d.EntryUUID), m.esc(d.Replaces))
		}
	}
	m.WriteString("</rim:RegistryObjectList>\n</lcm:SubmitObjectsRequest>\n")
	return m.Bytes()
}

// indexHTM is the package's INDEX.HTM (ITI TF-1 §16.1.3.2): a page that
// lists the documents, for someone opening the archive by hand.
func indexHTM(s *Submission) []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"UTF-8\"><title>IHE XDM</title></head><body>\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p>Patient (INS) %s. <a href=\"README.TXT\">README.TXT</a></p>\n<ul>\n",
		html.EscapeString(orDefault(s.Title, "Documents")), html.EscapeString(s.PatientINS))
	for _, d := range s.Documents {
		fmt.Fprintf(&b, "<li><a href=\"%s/SUBSET01/%s\">%s</a> (%s, %d bytes)</li>\n",
			xdmDir, d.URI, html.EscapeString(d.Title), html.EscapeString(d.MimeType), d.Size)
	}
	b.WriteString("</ul>\n</body></html>\n")
	return []byte(b.String())
}

// readme is the package's README.TXT (ITI TF-1 §16.1.3.1): who made it.
func readme(s *Submission) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "IHE XDM package (IHE ITI TF-1 section 16)\r\nMade by Carepost (carepost dmp pack), %s UTC.\r\n", s.Submitted.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "Submission set %s, %d document(s); metadata in %s/SUBSET01/%s.\r\n", s.UniqueID, len(s.Documents), xdmDir, metadataName)
	return []byte(b.String())
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
