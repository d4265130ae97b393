package dmp

// Reading an IHE_XDM.ZIP safely (IHE ITI TF-1 §16 XDM, ITI TF-3 §4.2 the
// ebRIM metadata; docs/dmp.md "Packages and checks").
//
// Implementation notes:
//
//   - Nothing in the zip's headers is trusted: every entry is inflated
//     through a limit, and its real size counted, so that a zip bomb costs
//     at most Limits.MaxEntrySize (or its ratio bound) of work before it is
//     refused.
//   - A submission set is atomic in XDS (ITI-41: the registry accepts all
//     of it or none), so a package with one missing or altered document is
//     refused as a whole; the *Refusal names that document in Doc.
//   - encoding/xml expands no external entity and processes no DTD, so
//     METADATA.XML cannot make the parser fetch or expand anything; its size
//     is bounded by MaxEntrySize.

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// Limits bound what ReadXDM accepts from an archive.
type Limits struct {
	// MaxEntries is the number of entries (files and directories) of one
	// archive.
	MaxEntries int
	// MaxEntrySize bounds one entry once inflated, MaxTotalSize all of
	// them (and the archive itself).
	MaxEntrySize, MaxTotalSize int64
	// MaxRatio bounds inflated/compressed size of an entry larger than
	// 64 KiB (small files of repeated text compress well and are
	// harmless).
	MaxRatio int
	// MaxDepth is how many levels of archives within the package are
	// checked and accepted as documents: 1 allows a zip document inside
	// IHE_XDM.ZIP (checked with the same limits, not read as XDM), 0
	// refuses any.
	MaxDepth int
}

// DefaultLimits are those of a message: 50 MiB in all (larger than any
// operator's message size limit), 20 MiB a document, 200 entries, a ratio
// of 100 and one level of nested archive.
func DefaultLimits() Limits {
	return Limits{MaxEntries: 200, MaxEntrySize: 20 << 20, MaxTotalSize: 50 << 20, MaxRatio: 100, MaxDepth: 1}
}

// ratioFloor is the inflated size under which the ratio is not checked.
const ratioFloor = 64 << 10

// Refusal is why a package or a document is refused: a short machine
// code (the "code" of the national KO receipt "code^libellé"), a sentence
// for the sender in English and in French.
type Refusal struct {
	Code     string
	Reason   string
	ReasonFR string
	// Doc is the UniqueID (or, before it is known, the file name) of the
	// document at fault, "" for the whole package.
	Doc string
}

func (r *Refusal) Error() string {
	if r.Doc != "" {
		return fmt.Sprintf("%s: %s (document %s)", r.Code, r.Reason, r.Doc)
	}
	return r.Code + ": " + r.Reason
}

// refuse makes a *Refusal; the French sentence is the code's label
// (CodeLabelFR) unless given.
func refuse(code, doc, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Doc: doc, Reason: fmt.Sprintf(format, args...), ReasonFR: CodeLabelFR(code)}
}

// The refusal codes (docs/dmp.md "Packages and checks").
const (
	RefusedBadZip          = "BAD_ZIP"
	RefusedZipTooLarge     = "ZIP_TOO_LARGE"
	RefusedZipBomb         = "ZIP_BOMB"
	RefusedTooManyEntries  = "TOO_MANY_ENTRIES"
	RefusedPathTraversal   = "PATH_TRAVERSAL"
	RefusedSymlink         = "SYMLINK"
	RefusedDuplicateEntry  = "DUPLICATE_ENTRY"
	RefusedNestedArchive   = "NESTED_ARCHIVE"
	RefusedMissingMetadata = "MISSING_METADATA"
	RefusedManySubsets     = "MULTIPLE_SUBSETS"
	RefusedBadMetadata     = "BAD_METADATA"
	RefusedNoDocument      = "NO_DOCUMENT"
	RefusedMissingDocument = "MISSING_DOCUMENT"
	RefusedSizeMismatch    = "SIZE_MISMATCH"
	RefusedHashMismatch    = "HASH_MISMATCH"
	RefusedBadINS          = "BAD_INS"
	RefusedWrongPatient    = "WRONG_PATIENT"
	RefusedAuthorMismatch  = "AUTHOR_MISMATCH"
	RefusedMissingField    = "MISSING_FIELD"
	RefusedUnknownCode     = "UNKNOWN_CODE"
	RefusedBadDate         = "BAD_DATE"
	RefusedDuplicateDoc    = "DUPLICATE_DOCUMENT"
	RefusedTooLarge        = "MESSAGE_TOO_LARGE"
)

var labelsFR = map[string]string{
	RefusedBadZip:          "Archive IHE_XDM.ZIP illisible",
	RefusedZipTooLarge:     "Archive trop volumineuse",
	RefusedZipBomb:         "Archive refusée : taille décompressée excessive",
	RefusedTooManyEntries:  "Archive refusée : trop de fichiers",
	RefusedPathTraversal:   "Archive refusée : chemin de fichier interdit",
	RefusedSymlink:         "Archive refusée : lien symbolique",
	RefusedDuplicateEntry:  "Archive refusée : fichier en double",
	RefusedNestedArchive:   "Archive refusée : archives imbriquées",
	RefusedMissingMetadata: "METADATA.XML absent",
	RefusedManySubsets:     "Plusieurs lots de soumission dans l'archive",
	RefusedBadMetadata:     "METADATA.XML illisible",
	RefusedNoDocument:      "Aucun document à déposer",
	RefusedMissingDocument: "Document absent de l'archive",
	RefusedSizeMismatch:    "Taille du document différente des métadonnées",
	RefusedHashMismatch:    "Empreinte SHA-1 du document différente des métadonnées",
	RefusedBadINS:          "INS du patient invalide",
	RefusedWrongPatient:    "Le document concerne un autre patient",
	RefusedAuthorMismatch:  "L'auteur du document n'est pas l'expéditeur",
	RefusedMissingField:    "Métadonnée obligatoire absente",
	RefusedUnknownCode:     "Code hors des jeux de valeurs",
	RefusedBadDate:         "Date invalide",
	RefusedDuplicateDoc:    "Document en double",
	RefusedTooLarge:        "Message trop volumineux",
}

// CodeLabelFR is the French label of a refusal code, for the "code^libellé"
// of the KO receipt; the code itself for a code it does not know.
func CodeLabelFR(code string) string {
	if l, ok := labelsFR[code]; ok {
		return l
	}
	return code
}

// The XDM layout (ITI TF-1 §16.1.3, ITI TF-3 §4.2.1.1).
const (
	xdmDir       = "IHE_XDM"
	metadataName = "METADATA.XML"
)

// zipMagic starts every local file header.
var zipMagic = []byte("PK\x03\x04")

// ReadXDM reads an IHE_XDM.ZIP of size bytes: it checks the archive
// against lim, parses IHE_XDM/SUBSETnn/METADATA.XML (one subset) and
// checks every document it names against its size and SHA-1. The error is
// a *Refusal for any package it will not take.
func ReadXDM(r io.ReaderAt, size int64, lim Limits) (*Submission, error) {
	files, err := readZip(r, size, lim, 0)
	if err != nil {
		return nil, err
	}
	// The one subset holding METADATA.XML.
	var metaPath string
	for name := range files {
		dir, base := path.Split(name)
		parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
		if strings.EqualFold(base, metadataName) && len(parts) == 2 && strings.EqualFold(parts[0], xdmDir) {
			if metaPath != "" {
				return nil, refuse(RefusedManySubsets, "", "The archive holds more than one submission set (%s and %s); send one per message.", metaPath, name)
			}
			metaPath = name
		}
	}
	if metaPath == "" {
		return nil, refuse(RefusedMissingMetadata, "", "The archive has no %s/SUBSET01/%s: it is not an IHE XDM package.", xdmDir, metadataName)
	}
	sub, err := ParseMetadata(files[metaPath])
	if err != nil {
		return nil, err
	}
	subset := path.Dir(metaPath)
	for i := range sub.Documents {
		d := &sub.Documents[i]
		id := d.UniqueID
		if id == "" {
			id = d.EntryUUID
		}
		if d.URI == "" {
			return nil, refuse(RefusedMissingField, id, "The document's metadata has no URI: it does not say which file of the archive it is.")
		}
		content, ok := lookup(files, subset+"/"+d.URI)
		if !ok {
			return nil, refuse(RefusedMissingDocument, id, "The document %q named in the metadata is not in the archive (expected %s/%s).", d.Title, subset, d.URI)
		}
		if d.Size < 0 || d.SHA1 == "" {
			return nil, refuse(RefusedMissingField, id, "The metadata of the document %q lacks its size or its SHA-1 hash, which check that it arrived whole.", d.Title)
		}
		if d.Size != int64(len(content)) {
			return nil, refuse(RefusedSizeMismatch, id, "The document %q has %d bytes, but its metadata says %d: it was altered or truncated.", d.Title, len(content), d.Size)
		}
		sum := sha1.Sum(content)
		if got := hex.EncodeToString(sum[:]); got != d.SHA1 {
			return nil, refuse(RefusedHashMismatch, id, "The SHA-1 of the document %q is %s, but its metadata says %q: it was altered.", d.Title, got, d.SHA1)
		}
		d.Content = content
	}
	return sub, nil
}

// lookup finds a file by its path, exactly, else ignoring case (archives
// made on Windows).
func lookup(files map[string][]byte, name string) ([]byte, bool) {
	if b, ok := files[name]; ok {
		return b, true
	}
	for n, b := range files {
		if strings.EqualFold(n, name) {
			return b, true
		}
	}
	return nil, false
}

// readZip checks an archive and returns its files' contents by name.
// depth is 0 for the package itself; a nested archive (a document that is
// a zip) is checked the same way up to lim.MaxDepth.
func readZip(r io.ReaderAt, size int64, lim Limits, depth int) (map[string][]byte, error) {
	if size > lim.MaxTotalSize {
		return nil, refuse(RefusedZipTooLarge, "", "The archive has %d bytes; the limit is %d.", size, lim.MaxTotalSize)
	}
	zr, err := zip.NewReader(r, size)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil // GODEBUG=zipinsecurepath=0: the names are checked below, with their reason
	}
	if err != nil {
		return nil, refuse(RefusedBadZip, "", "The archive cannot be read as a zip file (%s).", zipReason(err))
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, refuse(RefusedTooManyEntries, "", "The archive has %d entries; the limit is %d.", len(zr.File), lim.MaxEntries)
	}
	files := map[string][]byte{}
	seen := map[string]string{}
	var total int64
	for _, f := range zr.File {
		name := f.Name
		if err := checkEntryName(name); err != nil {
			return nil, err
		}
		key := strings.ToLower(strings.TrimSuffix(name, "/"))
		if prev, dup := seen[key]; dup {
			return nil, refuse(RefusedDuplicateEntry, "", "The archive holds %q twice (as %q and %q).", short(name), short(prev), short(name))
		}
		seen[key] = name
		mode := f.Mode()
		if mode&fs.ModeSymlink != 0 || (f.ExternalAttrs>>16)&0o170000 == 0o120000 {
			return nil, refuse(RefusedSymlink, "", "The entry %q is a symbolic link; an XDM package holds files only.", short(name))
		}
		if mode.IsDir() || strings.HasSuffix(name, "/") {
			continue
		}
		if mode&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0 {
			return nil, refuse(RefusedBadZip, "", "The entry %q is not a regular file.", short(name))
		}
		b, err := readEntry(f, lim, lim.MaxTotalSize-total)
		if err != nil {
			return nil, err
		}
		total += int64(len(b))
		if bytes.HasPrefix(b, zipMagic) || strings.EqualFold(path.Ext(name), ".zip") {
			if depth+1 > lim.MaxDepth {
				return nil, refuse(RefusedNestedArchive, "", "The entry %q is an archive within an archive; at most %d level(s) of nesting are accepted.", short(name), lim.MaxDepth)
			}
			inner := lim
			inner.MaxTotalSize = lim.MaxTotalSize - total
			if _, err := readZip(bytes.NewReader(b), int64(len(b)), inner, depth+1); err != nil {
				var rf *Refusal
				if errors.As(err, &rf) {
					rf.Reason = fmt.Sprintf("In the nested archive %q: %s", short(name), rf.Reason)
				}
				return nil, err
			}
		}
		files[name] = b
	}
	return files, nil
}

// readEntry inflates one entry through a limit: the smallest of the entry
// limit, what is left of the total, and the ratio bound.
func readEntry(f *zip.File, lim Limits, left int64) ([]byte, error) {
	name := short(f.Name)
	bound := lim.MaxEntrySize
	why := "the limit for one file"
	if left < bound {
		bound, why = left, "what is left of the limit for the whole archive"
	}
	if lim.MaxRatio > 0 {
		rb := int64(f.CompressedSize64) * int64(lim.MaxRatio)
		if f.CompressedSize64 > uint64(bound) || rb < 0 { // overflow: no ratio bound
			rb = bound
		}
		if rb < ratioFloor {
			rb = ratioFloor
		}
		if rb < bound {
			bound, why = rb, fmt.Sprintf("%d times its compressed size", lim.MaxRatio)
		}
	}
	if bound < 0 {
		bound = 0
	}
	rc, err := f.Open()
	if err != nil {
		return nil, refuse(RefusedBadZip, "", "The entry %q cannot be read (%s).", name, zipReason(err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, bound+1))
	if int64(len(b)) > bound {
		return nil, refuse(RefusedZipBomb, "", "The entry %q expands past %d bytes (%s): refused as a possible zip bomb.", name, bound, why)
	}
	if err != nil {
		return nil, refuse(RefusedBadZip, "", "The entry %q is damaged (%s).", name, zipReason(err))
	}
	return b, nil
}

// zipReason words archive/zip's errors for a sender.
func zipReason(err error) string {
	switch {
	case errors.Is(err, zip.ErrFormat):
		return "not a valid zip format"
	case errors.Is(err, zip.ErrAlgorithm):
		return "an unsupported compression method"
	case errors.Is(err, zip.ErrChecksum):
		return "its checksum does not match: the file is damaged"
	case errors.Is(err, zip.ErrInsecurePath):
		return "an insecure file name"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it is truncated"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// checkEntryName refuses the names that could write outside a directory
// where the archive is extracted (even though Carepost never extracts to
// disk, a package it forwards or stores may be): absolute paths, "\"
// separators, ".." elements, drive letters, NUL and control characters.
func checkEntryName(name string) error {
	bad := func(why string) error {
		return refuse(RefusedPathTraversal, "", "The entry name %q is refused: %s.", short(name), why)
	}
	switch {
	case name == "":
		return bad("it is empty")
	case strings.HasPrefix(name, "/"):
		return bad("it is an absolute path")
	case strings.Contains(name, `\`):
		return bad(`it contains a backslash`)
	case len(name) >= 2 && name[1] == ':':
		return bad("it starts with a drive letter")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return bad("it contains a control character")
		}
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return bad("it contains a \"..\" element")
		}
	}
	return nil
}

// short keeps names from the archive short in sentences.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// --- METADATA.XML (ebRIM 3.0, ITI TF-3 §4.2.3) ---

// The classification schemes and identification schemes of XDS (ITI TF-3
// §4.2.5, Table 4.2.5-1/2).
const (
	schemeDocAuthor      = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
	schemeClassCode      = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
	schemeConfidentialty = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
	schemeFormatCode     = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
	schemeFacilityType   = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
	schemePracticeSet    = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
	schemeTypeCode       = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
	schemeEventCode      = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
	idDocUniqueID        = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
	idDocPatientID       = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"

	objectTypeDocEntry = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
	nodeSubmissionSet  = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
	schemeSetAuthor    = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
	schemeContentType  = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
	idSetUniqueID      = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
	idSetSourceID      = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
	idSetPatientID     = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"

	assocHasMember = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
	assocRPLC      = "urn:ihe:iti:2007:AssociationType:RPLC"

	// classSignature is the classCode of a document digital signature
	// (IHE DSG), which DMP packages carry next to the documents.
	classSignature = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
)

// The ebRIM elements, matched by local name: producers differ in their
// prefixes and some omit the namespaces.
type rimSlot struct {
	Name   string   `xml:"name,attr"`
	Values []string `xml:"ValueList>Value"`
}

type rimName struct {
	Values []struct {
		Value string `xml:"value,attr"`
	} `xml:"LocalizedString"`
}

func (n rimName) text() string {
	if len(n.Values) == 0 {
		return ""
	}
	return strings.TrimSpace(n.Values[0].Value)
}

type rimClassification struct {
	ID                 string    `xml:"id,attr"`
	Scheme             string    `xml:"classificationScheme,attr"`
	ClassifiedObject   string    `xml:"classifiedObject,attr"`
	ClassificationNode string    `xml:"classificationNode,attr"`
	Node               string    `xml:"nodeRepresentation,attr"`
	Slots              []rimSlot `xml:"Slot"`
	Name               rimName   `xml:"Name"`
}

type rimExternalID struct {
	Scheme string `xml:"identificationScheme,attr"`
	Value  string `xml:"value,attr"`
}

type rimObject struct {
	ID              string              `xml:"id,attr"`
	MimeType        string              `xml:"mimeType,attr"`
	ObjectType      string              `xml:"objectType,attr"`
	Slots           []rimSlot           `xml:"Slot"`
	Name            rimName             `xml:"Name"`
	Classifications []rimClassification `xml:"Classification"`
	ExternalIDs     []rimExternalID     `xml:"ExternalIdentifier"`
}

type rimAssociation struct {
	Type   string `xml:"associationType,attr"`
	Source string `xml:"sourceObject,attr"`
	Target string `xml:"targetObject,attr"`
}

type rimSubmit struct {
	XMLName xml.Name
	List    struct {
		Extrinsic       []rimObject         `xml:"ExtrinsicObject"`
		Packages        []rimObject         `xml:"RegistryPackage"`
		Classifications []rimClassification `xml:"Classification"`
		Associations    []rimAssociation    `xml:"Association"`
	} `xml:"RegistryObjectList"`
}

func (o *rimObject) slot(name string) string {
	for _, s := range o.Slots {
		if s.Name == name && len(s.Values) > 0 {
			return strings.TrimSpace(s.Values[0])
		}
	}
	return ""
}

func (o *rimObject) externalID(scheme string) string {
	for _, e := range o.ExternalIDs {
		if e.Scheme == scheme {
			return strings.TrimSpace(e.Value)
		}
	}
	return ""
}

func (c *rimClassification) slot(name string) string {
	for _, s := range c.Slots {
		if s.Name == name && len(s.Values) > 0 {
			return strings.TrimSpace(s.Values[0])
		}
	}
	return ""
}

func (c *rimClassification) code() Code {
	return Code{Code: strings.TrimSpace(c.Node), Scheme: c.slot("codingScheme"), Display: c.Name.text()}
}

func (o *rimObject) code(scheme string) Code {
	for i := range o.Classifications {
		if o.Classifications[i].Scheme == scheme {
			return o.Classifications[i].code()
		}
	}
	return Code{}
}

// ParseMetadata parses METADATA.XML, an ebRIM SubmitObjectsRequest (ITI
// TF-3 §4.2.3): the submission set, its documents (without Content) and
// their replacements (RPLC associations). It checks the shape only: the
// checks against the message are Validate's. The error is a *Refusal.
func ParseMetadata(b []byte) (*Submission, error) {
	var req rimSubmit
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("the encoding %q is not supported; use UTF-8", short(charset))
	}
	if err := dec.Decode(&req); err != nil {
		return nil, refuse(RefusedBadMetadata, "", "%s is not well-formed XML (%s).", metadataName, short(err.Error()))
	}
	if req.XMLName.Local != "SubmitObjectsRequest" {
		return nil, refuse(RefusedBadMetadata, "", "%s must be an ebRIM SubmitObjectsRequest, not a %q element.", metadataName, short(req.XMLName.Local))
	}
	list := &req.List
	sub := &Submission{FromXDM: true}

	// The submission set: the RegistryPackage classified as such (the
	// classification inside it or at the top level), else the only one.
	isSet := map[string]bool{}
	for _, c := range list.Classifications {
		if c.ClassificationNode == nodeSubmissionSet {
			isSet[c.ClassifiedObject] = true
		}
	}
	var set *rimObject
	for i := range list.Packages {
		p := &list.Packages[i]
		for _, c := range p.Classifications {
			if c.ClassificationNode == nodeSubmissionSet {
				isSet[p.ID] = true
			}
		}
		if isSet[p.ID] {
			set = p
			break
		}
	}
	if set == nil && len(list.Packages) == 1 {
		set = &list.Packages[0]
	}
	if set != nil {
		sub.UniqueID = set.externalID(idSetUniqueID)
		sub.SourceID = set.externalID(idSetSourceID)
		sub.PatientINS = patientFromCX(set.externalID(idSetPatientID))
		sub.Submitted, _ = parseDTM(set.slot("submissionTime"))
		sub.Title = set.Name.text()
		for i := range set.Classifications {
			if set.Classifications[i].Scheme == schemeSetAuthor {
				sub.Authors = append(sub.Authors, parseAuthor(&set.Classifications[i]))
			}
		}
		sub.ContentType = set.code(schemeContentType)
	}

	replaces := map[string]string{}
	for _, a := range list.Associations {
		if a.Type == assocRPLC {
			replaces[a.Source] = strings.TrimSpace(a.Target)
		}
	}
	for i := range list.Extrinsic {
		o := &list.Extrinsic[i]
		d := Document{
			EntryUUID:       o.ID,
			UniqueID:        o.externalID(idDocUniqueID),
			PatientINS:      patientFromCX(o.externalID(idDocPatientID)),
			ClassCode:       o.code(schemeClassCode),
			TypeCode:        o.code(schemeTypeCode),
			FormatCode:      o.code(schemeFormatCode),
			FacilityType:    o.code(schemeFacilityType),
			PracticeSetting: o.code(schemePracticeSet),
			Title:           o.Name.text(),
			Language:        o.slot("languageCode"),
			MimeType:        strings.TrimSpace(o.MimeType),
			SHA1:            strings.ToLower(o.slot("hash")),
			URI:             o.slot("URI"),
			Replaces:        replaces[o.ID],
		}
		d.CreationTime, _ = parseDTM(o.slot("creationTime"))
		d.ServiceStart, _ = parseDTM(o.slot("serviceStartTime"))
		d.ServiceStop, _ = parseDTM(o.slot("serviceStopTime"))
		if s := o.slot("size"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return nil, refuse(RefusedBadMetadata, d.UniqueID, "The size %q of a document is not a number of bytes.", short(s))
			}
			d.Size = n
		} else {
			d.Size = -1
		}
		for j := range o.Classifications {
			c := &o.Classifications[j]
			switch c.Scheme {
			case schemeDocAuthor:
				d.Authors = append(d.Authors, parseAuthor(c))
			case schemeConfidentialty:
				code := c.code()
				d.Confidentiality = append(d.Confidentiality, code)
				d.Visibility |= visibilityOf(code.Code)
			}
		}
		sub.Documents = append(sub.Documents, d)
	}
	if len(sub.Documents) == 0 {
		return nil, refuse(RefusedNoDocument, "", "%s describes no document (no ExtrinsicObject).", metadataName)
	}
	if sub.PatientINS == "" {
		sub.PatientINS = sub.Documents[0].PatientINS
	}
	return sub, nil
}

// visibilityOf maps a TRE_A07 code to its flag.
func visibilityOf(code string) Visibility {
	switch code {
	case CodeInvisiblePatient:
		return InvisiblePatient
	case CodeInvisibleLegalRepresentatives, "INVISIBLE_REP_LEGAUX":
		return InvisibleLegalRepresentatives
	case CodeHiddenFromProfessionals:
		return HiddenFromProfessionals
	}
	return 0
}

// The INS assigning authorities (docs/domain.md §2): INS-NIR, INS-NIA,
// and the test and demonstration ones.
var insOIDs = map[string]bool{
	"1.2.250.1.213.1.4.8":  true,
	"1.2.250.1.213.1.4.9":  true,
	"1.2.250.1.213.1.4.10": true,
	"1.2.250.1.213.1.4.11": true,
}

// OIDINSNIR is the assigning authority of the INS-NIR.
const OIDINSNIR = "1.2.250.1.213.1.4.8"

// patientFromCX reads the matricule INS of an HL7 v2 CX patient
// identifier, `<INS>^^^&1.2.250.1.213.1.4.8&ISO` with or without the
// identifier type (^NH, ^INS): the ID upper-cased when the assigning
// authority is an INS one. Otherwise it returns the CX unchanged, which
// the check (Validate, directory.ParseINS) then refuses as no INS with
// the value the sender gave.
func patientFromCX(cx string) string {
	cx = strings.TrimSpace(cx)
	comps := strings.Split(cx, "^")
	if len(comps) >= 4 {
		sub := strings.Split(comps[3], "&")
		if len(sub) >= 2 && insOIDs[sub[1]] {
			return strings.ToUpper(strings.TrimSpace(comps[0]))
		}
	}
	return cx
}

// patientCX writes the CX of an INS-NIR for the metadata (the CI-SIS
// form, with the identifier type NH).
func patientCX(ins string) string {
	return ins + "^^^&" + OIDINSNIR + "&ISO^NH"
}

// parseAuthor reads an author classification: authorPerson (XCN:
// id^family^given^…), authorInstitution (XON: name^^^^^&OID&ISO^type^^^id),
// authorRole, authorSpecialty (code^display^scheme).
func parseAuthor(c *rimClassification) Author {
	var a Author
	if p := c.slot("authorPerson"); p != "" {
		comps := strings.Split(p, "^")
		a.PersonID = strings.TrimSpace(comps[0])
		if len(comps) > 1 {
			a.LastName = comps[1]
		}
		if len(comps) > 2 {
			a.FirstName = comps[2]
		}
	}
	if inst := c.slot("authorInstitution"); inst != "" {
		comps := strings.Split(inst, "^")
		a.InstitutionName = comps[0]
		if len(comps) >= 10 {
			a.InstitutionID = strings.TrimSpace(comps[9])
		}
	}
	a.Role = c.slot("authorRole")
	if s := c.slot("authorSpecialty"); s != "" {
		a.Specialty, _, _ = strings.Cut(s, "^")
	}
	return a
}

// parseDTM reads an HL7 DTM of XDS (YYYY[MM[DD[HH[MM[SS]]]]], UTC).
func parseDTM(s string) (time.Time, error) {
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	l, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a date YYYYMMDDHHMMSS", short(s))
	}
	return time.ParseInLocation(l, s, time.UTC)
}

// formatDTM writes a time as XDS wants it: UTC, to the second.
func formatDTM(t time.Time) string {
	return t.UTC().Format("20060102150405")
}
