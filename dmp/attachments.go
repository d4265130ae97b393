package dmp

// The documents of a message without an XDM package (SPEC §7: "plain
// attachments with the metadata the sender's mailbox gives"), and the
// IHE_XDM.ZIP attachment of a message.
//
// The message is walked with go-message's textproto, not its Entity,
// because Entity converts text/* bodies to UTF-8: a CDA sent as
// text/xml; charset=ISO-8859-1 must be deposited byte for byte, as its
// XML declaration describes it.

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"path"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/directory"
)

// UnknownType is the typeCode of an attachment whose type nothing gives
// (no X-MSS-CODECDA header, not a CDA document): the grid decides.
const UnknownType = "unknown"

// maxPartDepth bounds the nesting of multiparts walked.
const maxPartDepth = 8

// XDMName is the file name of the package attachment (any case).
const XDMName = "IHE_XDM.ZIP"

// part is one leaf of a message.
type part struct {
	mediaType string
	filename  string
	body      io.Reader
}

// walkMessage calls fn for each leaf part of the message (the root when it
// is not multipart), its transfer encoding decoded and its charset left
// alone. Parts with an unknown transfer encoding are skipped.
func walkMessage(msg io.Reader, fn func(p part) error) (textproto.Header, error) {
	br := bufio.NewReader(msg)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return h, refuse(RefusedBadZip, "", "The message cannot be read (%s).", short(err.Error()))
	}
	return h, walkPart(h, br, 0, fn)
}

func walkPart(h textproto.Header, body io.Reader, depth int, fn func(p part) error) error {
	mh := message.Header{Header: h}
	mt, params, _ := mh.ContentType()
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		if depth >= maxPartDepth {
			return nil
		}
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return nil // a broken multipart: what was read stays
			}
			if err := walkPart(p.Header, p, depth+1, fn); err != nil {
				return err
			}
		}
	}
	name := ""
	if _, dp, err := mh.ContentDisposition(); err == nil {
		name = dp["filename"]
	}
	if name == "" {
		name = params["name"]
	}
	if dec, err := (&mime.WordDecoder{}).DecodeHeader(name); err == nil {
		name = dec
	}
	// Decode the transfer encoding only: a copy of the header without the
	// charset, so that message.New converts nothing.
	plain := h.Copy()
	plain.Set("Content-Type", mt)
	e, err := message.New(message.Header{Header: plain}, body)
	if err != nil {
		return nil
	}
	return fn(part{mediaType: mt, filename: path.Base(strings.ReplaceAll(name, `\`, "/")), body: e.Body})
}

// FindXDM returns the IHE_XDM.ZIP attachment of a message (its file name
// IHE_XDM.ZIP in any case, whatever its media type), nil if there is
// none. It reads at most DefaultLimits().MaxTotalSize of it: a larger one
// is a *Refusal ZIP_TOO_LARGE.
func FindXDM(msg io.Reader) ([]byte, error) {
	max := DefaultLimits().MaxTotalSize
	var found []byte
	errStop := errors.New("found")
	_, err := walkMessage(msg, func(p part) error {
		if !strings.EqualFold(p.filename, XDMName) {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(p.body, max+1))
		if err != nil {
			return refuse(RefusedBadZip, "", "The %s attachment cannot be read (%s).", XDMName, short(err.Error()))
		}
		if int64(len(b)) > max {
			return refuse(RefusedZipTooLarge, "", "The %s attachment is larger than %d bytes.", XDMName, max)
		}
		found = b
		return errStop
	})
	if err != nil && err != errStop {
		return nil, err
	}
	return found, nil
}

// isCDAType and isPDF say which attachments are documents to deposit.
func isXMLType(mt, name string) bool {
	switch mt {
	case "text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml":
		return true
	}
	return mt == "application/octet-stream" && strings.EqualFold(path.Ext(name), ".xml")
}

func isPDF(mt, name string) bool {
	return mt == "application/pdf" || (mt == "application/octet-stream" && strings.EqualFold(path.Ext(name), ".pdf"))
}

// FromAttachments makes a submission of the PDF and CDA attachments of a
// message (already decrypted) without an XDM package: the patient is the
// addressed one, the author the sender (by), the title the CDA's title or
// the file name, the type the CDA's code, else the X-MSS-CODECDA header
// when it holds a single code, else UnknownType. Other attachments (and
// an IHE_XDM.ZIP: use FindXDM first) are not documents to deposit. A
// message without any gives a submission without documents. Each
// attachment is read up to DefaultLimits().MaxEntrySize, all of them up to
// MaxTotalSize (a *Refusal MESSAGE_TOO_LARGE beyond).
func FromAttachments(msg io.Reader, patientINS string, by Depositor, now time.Time) (*Submission, error) {
	ins, err := directory.ParseINS(patientINS)
	if err != nil {
		return nil, refuse(RefusedBadINS, "", "The addressed patient has no valid INS: %s", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	lim := DefaultLimits()
	author := Author{PersonID: by.NationalID, InstitutionID: by.Organisation, Specialty: by.Specialty}
	sub := &Submission{PatientINS: ins, Authors: []Author{author}, Submitted: now}
	var total int64
	h, err := walkMessage(msg, func(p part) error {
		if p.filename == "" || p.filename == "." || strings.EqualFold(p.filename, XDMName) {
			return nil
		}
		xmlDoc, pdf := isXMLType(p.mediaType, p.filename), isPDF(p.mediaType, p.filename)
		if !xmlDoc && !pdf {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(p.body, lim.MaxEntrySize+1))
		if err != nil {
			return refuse(RefusedBadZip, "", "The attachment %q cannot be read (%s).", short(p.filename), short(err.Error()))
		}
		if int64(len(b)) > lim.MaxEntrySize {
			return refuse(RefusedTooLarge, "", "The attachment %q is larger than %d bytes.", short(p.filename), lim.MaxEntrySize)
		}
		if total += int64(len(b)); total > lim.MaxTotalSize {
			return refuse(RefusedTooLarge, "", "The attachments are larger than %d bytes in all.", lim.MaxTotalSize)
		}
		d := Document{
			EntryUUID:       "urn:uuid:" + newUUID(),
			UniqueID:        NewOID(),
			PatientINS:      ins,
			Authors:         []Author{author},
			CreationTime:    now,
			ServiceStart:    now,
			Title:           strings.TrimSuffix(p.filename, path.Ext(p.filename)),
			Language:        "fr-FR",
			MimeType:        p.mediaType,
			Size:            int64(len(b)),
			URI:             p.filename,
			Content:         b,
			Confidentiality: []Code{{Code: "N", Scheme: oidConfidentiality, Display: "Normal"}},
		}
		sum := sha1.Sum(b)
		d.SHA1 = hex.EncodeToString(sum[:])
		if pdf {
			d.MimeType = "application/pdf"
		}
		if cda, ok := readCDA(b); ok && xmlDoc {
			d.MimeType = "text/xml"
			if t := strings.TrimSpace(cda.Title); t != "" {
				d.Title = t
			}
			if c := strings.TrimSpace(cda.Code.Code); c != "" {
				d.TypeCode = Code{Code: c, Scheme: orDefault(cda.Code.CodeSystem, OIDLOINC), Display: cda.Code.DisplayName}
			}
			if cda.ID.Root != "" {
				d.UniqueID = cda.ID.Root
				if cda.ID.Extension != "" {
					d.UniqueID += "^" + cda.ID.Extension
				}
			}
			if t, err := parseTS(cda.EffectiveTime.Value); err == nil {
				d.CreationTime, d.ServiceStart = t, t
			}
		} else if xmlDoc {
			return nil // XML that is not CDA: not a document of the DMP
		}
		d.FormatCode = FormatFor(d.MimeType)
		sub.Documents = append(sub.Documents, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The type of the documents no CDA typed: the header's when it names
	// one code (X-MSS-CODECDA lists the code of each CDA, Réf #2).
	// With a CDA among the attachments, the header is that CDA's code,
	// not the other documents'.
	headerCode := ""
	cdas := 0
	for _, d := range sub.Documents {
		if d.TypeCode.Code != "" {
			cdas++
		}
	}
	if v := strings.TrimSpace(h.Get("X-MSS-CODECDA")); v != "" && !strings.Contains(v, ",") && cdas == 0 {
		headerCode = v
	}
	for i := range sub.Documents {
		d := &sub.Documents[i]
		if d.TypeCode.Code != "" {
			continue
		}
		if headerCode != "" {
			d.TypeCode = Code{Code: headerCode, Scheme: OIDLOINC}
		} else {
			d.TypeCode = Code{Code: UnknownType}
		}
	}
	if s, err := (&mime.WordDecoder{}).DecodeHeader(h.Get("Subject")); err == nil {
		sub.Title = strings.TrimSpace(strings.TrimPrefix(s, SubjectPrefix))
	}
	return sub, nil
}

// parseTS reads an HL7 v3 TS (YYYYMMDD[HHMM[SS]][+ZZZZ]).
func parseTS(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	zone := ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		s, zone = s[:i], s[i:]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	t, err := parseDTM(s)
	if err != nil {
		return t, err
	}
	if len(zone) == 5 {
		if z, err := time.Parse("-0700", zone); err == nil {
			_, off := z.Zone()
			t = t.Add(-time.Duration(off) * time.Second)
		}
	}
	return t.UTC(), nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	b := randomUUID()
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
