package dmp

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
)

// The checks a strict MHD Document Recipient makes of an ITI-65 Provide
// Document Bundle: the tests' loopback recipient and the server's
// end-to-end test use them (CheckProvideBundle), and they say what
// MHDConnector promises to send.

type checkedDoc struct {
	entry    int
	master   string
	typeCode string
}

// checkBundle checks an ITI-65 Bundle as a strict Document Recipient
// would: resource types, request, unique fullUrls all referenced, the List
// naming every DocumentReference, each DocumentReference's attachment
// pointing at a Binary of the Bundle whose size and SHA-1 match, the INS
// system, the masterIdentifier, the author's RPPS system.
func checkBundle(body []byte) ([]checkedDoc, error) {
	var b struct {
		ResourceType string
		Type         string
		Meta         fhirMeta
		Entry        []struct {
			FullURL  string
			Resource json.RawMessage
			Request  *fhirRequest
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if b.ResourceType != "Bundle" || b.Type != "transaction" {
		return nil, fmt.Errorf("not a transaction Bundle: %s %s", b.ResourceType, b.Type)
	}
	if len(b.Meta.Profile) != 1 || b.Meta.Profile[0] != MHDProvideBundleProfile {
		return nil, fmt.Errorf("meta.profile %v", b.Meta.Profile)
	}
	type res struct {
		typ string
		raw json.RawMessage
		idx int
	}
	byURL := map[string]res{}
	referenced := map[string]int{}
	var lists []int
	for i, e := range b.Entry {
		if !strings.HasPrefix(e.FullURL, "urn:uuid:") || !uuidRe.MatchString(strings.TrimPrefix(e.FullURL, "urn:uuid:")) {
			return nil, fmt.Errorf("entry %d: fullUrl %q is not a urn:uuid", i, e.FullURL)
		}
		if _, dup := byURL[e.FullURL]; dup {
			return nil, fmt.Errorf("entry %d: fullUrl %s twice", i, e.FullURL)
		}
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, err)
		}
		if e.Request == nil || e.Request.Method != "POST" || e.Request.URL != head.ResourceType {
			return nil, fmt.Errorf("entry %d: request %+v for a %s", i, e.Request, head.ResourceType)
		}
		switch head.ResourceType {
		case "List":
			lists = append(lists, i)
		case "DocumentReference", "Binary":
		default:
			return nil, fmt.Errorf("entry %d: unexpected %s", i, head.ResourceType)
		}
		byURL[e.FullURL] = res{head.ResourceType, e.Resource, i}
	}
	if len(lists) != 1 || lists[0] != 0 {
		return nil, fmt.Errorf("want one List first, have %v", lists)
	}
	var ins string // the patient: the same INS, with a valid key, everywhere
	checkSubject := func(where string, s fhirReference) error {
		if s.Identifier == nil || s.Identifier.System != "urn:oid:1.2.250.1.213.1.4.8" {
			return fmt.Errorf("%s: subject %+v is not an INS", where, s)
		}
		if ins == "" {
			if _, err := directory.ParseINS(s.Identifier.Value); err != nil {
				return fmt.Errorf("%s: subject %q: %v", where, s.Identifier.Value, err)
			}
			ins = s.Identifier.Value
		}
		if s.Identifier.Value != ins {
			return fmt.Errorf("%s: subject %q is not the patient %s", where, s.Identifier.Value, ins)
		}
		return nil
	}
	var list fhirList
	if err := json.Unmarshal(b.Entry[0].Resource, &list); err != nil {
		return nil, err
	}
	if list.Status != "current" || list.Mode != "working" || len(list.Code.Coding) != 1 || list.Code.Coding[0].Code != "submissionset" {
		return nil, fmt.Errorf("List: not a submission set: %s %s %+v", list.Status, list.Mode, list.Code)
	}
	if len(list.Identifier) == 0 || !strings.HasPrefix(list.Identifier[0].Value, "urn:oid:") {
		return nil, fmt.Errorf("List: identifier %+v", list.Identifier)
	}
	if len(list.Extension) != 1 || list.Extension[0].URL != mhdSourceIDExtension {
		return nil, fmt.Errorf("List: sourceId %+v", list.Extension)
	}
	if err := checkSubject("List", list.Subject); err != nil {
		return nil, err
	}
	if _, err := time.Parse(time.RFC3339, list.Date); err != nil {
		return nil, fmt.Errorf("List: date %q", list.Date)
	}
	for _, it := range list.Entry {
		if r, ok := byURL[it.Item.Reference]; !ok || r.typ != "DocumentReference" {
			return nil, fmt.Errorf("List: entry %q is no DocumentReference of the Bundle", it.Item.Reference)
		}
		referenced[it.Item.Reference]++
	}
	var docs []checkedDoc
	masters := map[string]bool{}
	for i, e := range b.Entry {
		if byURL[e.FullURL].typ != "DocumentReference" {
			continue
		}
		if referenced[e.FullURL] != 1 {
			return nil, fmt.Errorf("entry %d: DocumentReference not in the List", i)
		}
		var d fhirDocumentReference
		dec := json.NewDecoder(strings.NewReader(string(e.Resource)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, err)
		}
		where := fmt.Sprintf("DocumentReference %d", i)
		if d.Status != "current" || d.MasterIdentifier.Value == "" || d.MasterIdentifier.System == "" {
			return nil, fmt.Errorf("%s: status %q masterIdentifier %+v", where, d.Status, d.MasterIdentifier)
		}
		if masters[d.MasterIdentifier.Value] {
			return nil, fmt.Errorf("%s: masterIdentifier twice", where)
		}
		masters[d.MasterIdentifier.Value] = true
		if err := checkSubject(where, d.Subject); err != nil {
			return nil, err
		}
		if d.Type == nil || len(d.Type.Coding) != 1 || d.Type.Coding[0].System != "http://loinc.org" {
			return nil, fmt.Errorf("%s: type %+v", where, d.Type)
		}
		if len(d.SecurityLabel) == 0 {
			return nil, fmt.Errorf("%s: no securityLabel", where)
		}
		contained := map[string]fhirContained{}
		for _, c := range d.Contained {
			contained["#"+c.ID] = c
		}
		if len(d.Author) == 0 {
			return nil, fmt.Errorf("%s: no author", where)
		}
		for _, a := range d.Author {
			c, ok := contained[a.Reference]
			if !ok {
				return nil, fmt.Errorf("%s: author %q is not contained", where, a.Reference)
			}
			if c.ResourceType == "Practitioner" && (len(c.Identifier) != 1 || c.Identifier[0].System != "urn:oid:1.2.250.1.71.4.2.1") {
				return nil, fmt.Errorf("%s: author identifier %+v", where, c.Identifier)
			}
			delete(contained, a.Reference)
		}
		if len(contained) > 0 {
			return nil, fmt.Errorf("%s: contained resources not referenced", where)
		}
		if len(d.Content) != 1 {
			return nil, fmt.Errorf("%s: %d contents", where, len(d.Content))
		}
		att := d.Content[0].Attachment
		bin, ok := byURL[att.URL]
		if !ok || bin.typ != "Binary" {
			return nil, fmt.Errorf("%s: attachment url %q is no Binary of the Bundle", where, att.URL)
		}
		referenced[att.URL]++
		var bb fhirBinary
		if err := json.Unmarshal(bin.raw, &bb); err != nil {
			return nil, err
		}
		data, err := base64.StdEncoding.DecodeString(bb.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: Binary data: %v", where, err)
		}
		sum := sha1.Sum(data)
		if att.Hash != base64.StdEncoding.EncodeToString(sum[:]) || att.Size != int64(len(data)) {
			return nil, fmt.Errorf("%s: hash/size %s/%d do not match the Binary's", where, att.Hash, att.Size)
		}
		if att.ContentType != bb.ContentType || att.ContentType == "" || att.Language == "" || att.Creation == "" {
			return nil, fmt.Errorf("%s: attachment %+v", where, att)
		}
		docs = append(docs, checkedDoc{entry: i, master: d.MasterIdentifier.System + "|" + d.MasterIdentifier.Value, typeCode: d.Type.Coding[0].Code})
	}
	for u, r := range byURL {
		if r.typ == "Binary" && referenced[u] != 1 {
			return nil, fmt.Errorf("the Binary %s is referenced %d times", u, referenced[u])
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no document")
	}
	return docs, nil
}

// CheckProvideBundle checks body, an ITI-65 Provide Document Bundle, as a
// strict Document Recipient would (checkBundle) and returns the
// masterIdentifiers of its documents.
func CheckProvideBundle(body []byte) ([]string, error) {
	docs, err := checkBundle(body)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.master
	}
	return out, nil
}
