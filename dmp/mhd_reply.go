package dmp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Document Recipient's reply to an ITI-65 Bundle (mhd.go), read into
// one result per document.

// entryResult is what the reply says of one document sent.
type entryResult struct {
	deposited bool
	ref       string // the DocumentReference's id on the server
	duplicate bool   // already there: deposited by an earlier attempt
	retry     bool   // not deposited only because another document was a duplicate
	reason    string
}

// parseMHDResponse reads the server's reply to the transaction (FHIR R4
// http.html#transaction-response). It returns one result per document of
// plan, or an error when the deposit should be tried again later.
func parseMHDResponse(status int, body []byte, plan bundlePlan) ([]entryResult, error) {
	n := len(plan.docRef)
	switch {
	case status == http.StatusOK || status == http.StatusCreated:
		var b fhirBundle
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, fmt.Errorf("dmp: mhd: the reply (HTTP %d) is not FHIR JSON: %v", status, err)
		}
		if b.ResourceType != "Bundle" || b.Type != "transaction-response" {
			return nil, fmt.Errorf("dmp: mhd: the reply (HTTP %d) is a %s %s, not a transaction-response Bundle", status, clip(b.ResourceType, 40), clip(b.Type, 40))
		}
		if len(b.Entry) != plan.entries {
			return nil, fmt.Errorf("dmp: mhd: the reply has %d entries for the %d sent", len(b.Entry), plan.entries)
		}
		out := make([]entryResult, n)
		for k := 0; k < n; k++ {
			for _, e := range []int{plan.docRef[k], plan.binary[k]} {
				r := b.Entry[e].Response
				if r == nil {
					return nil, fmt.Errorf("dmp: mhd: entry %d of the reply has no response", e)
				}
				code := httpStatusCode(r.Status)
				if code < 200 || code > 299 {
					if out[k].reason == "" {
						out[k].reason = entryRefusal(r)
					}
					continue
				}
				if e == plan.docRef[k] {
					out[k].ref = locationID(r.Location, "DocumentReference")
				}
			}
			out[k].deposited = out[k].reason == ""
			if !out[k].deposited {
				out[k].ref = ""
			}
		}
		return out, nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return nil, fmt.Errorf("dmp: mhd: the record's endpoint is busy (HTTP %d)", status)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("dmp: mhd: the record's endpoint refused Carepost's credentials (HTTP %d): check the client certificate or bearer token", status)
	case status >= 400 && status <= 499:
		var oo fhirBundle
		if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
			// A 4xx without an OperationOutcome is not a refusal we
			// can explain to the sender: try again, the operator sees
			// it in the log.
			return nil, fmt.Errorf("dmp: mhd: the record's endpoint answered HTTP %d without an OperationOutcome", status)
		}
		return refusals(oo.Issue, plan), nil
	default:
		return nil, fmt.Errorf("dmp: mhd: the record's endpoint failed (HTTP %d)", status)
	}
}

// refusals maps the issues of an OperationOutcome to the documents
// (Implementation notes at the top of this file).
func refusals(issues []fhirIssue, plan bundlePlan) []entryResult {
	n := len(plan.docRef)
	owner := map[int]int{} // entry index → document k
	for k := 0; k < n; k++ {
		owner[plan.docRef[k]], owner[plan.binary[k]] = k, k
	}
	perDoc := make([][]fhirIssue, n)
	var general []fhirIssue
	onlyDuplicates := true
	errorsSeen := 0
	for _, is := range issues {
		if is.Severity != "error" && is.Severity != "fatal" {
			continue
		}
		errorsSeen++
		dup := isDuplicate(is)
		if !dup {
			onlyDuplicates = false
		}
		e, ok := issueEntry(is)
		if k, mine := owner[e]; ok && mine {
			perDoc[k] = append(perDoc[k], is)
			continue
		}
		general = append(general, is)
	}
	out := make([]entryResult, n)
	if errorsSeen == 0 {
		for k := range out {
			out[k].reason = "The record refused the submission without saying why."
		}
		return out
	}
	if onlyDuplicates {
		named := false
		for k := range out {
			if len(perDoc[k]) > 0 {
				named = true
			}
		}
		for k := range out {
			switch {
			case !named || len(perDoc[k]) > 0:
				// Nothing named (the whole submission again, or its
				// submission set) or this document named: already
				// there.
				out[k].duplicate = true
			default:
				out[k].retry = true
			}
		}
		return out
	}
	for k := range out {
		if len(perDoc[k]) > 0 {
			out[k].reason = issueText(perDoc[k])
		} else if len(general) > 0 {
			out[k].reason = issueText(general)
		} else {
			out[k].reason = "The record refused the whole submission because of another document of it."
		}
	}
	return out
}

// isDuplicate tells an issue saying the uniqueId is already in the
// registry (FHIR IssueType "duplicate"; XDS error codes as MHD servers
// report them in details). A duplicate with another content
// (XDSNonIdenticalHash) is a refusal, not a duplicate.
func isDuplicate(is fhirIssue) bool {
	texts := []string{is.Diagnostics}
	if is.Details != nil {
		texts = append(texts, is.Details.Text)
		for _, c := range is.Details.Coding {
			texts = append(texts, c.Code)
		}
	}
	for _, t := range texts {
		if strings.Contains(t, xdsNonIdenticalHash) {
			return false
		}
	}
	if is.Code == "duplicate" {
		return true
	}
	for _, t := range texts {
		if strings.Contains(t, xdsDuplicateUniqueID) {
			return true
		}
	}
	return false
}

var entryIndexRe = regexp.MustCompile(`Bundle\.entry\[(\d{1,6})\]`)

// issueEntry finds the Bundle entry an issue is about, from its expression
// (FHIRPath) or its deprecated location.
func issueEntry(is fhirIssue) (int, bool) {
	for _, s := range append(append([]string(nil), is.Expression...), is.Location...) {
		if m := entryIndexRe.FindStringSubmatch(s); m != nil {
			n, err := strconv.Atoi(m[1])
			if err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// issueText is one sentence for the sender made from the issues'
// diagnostics (or their details), bounded.
func issueText(issues []fhirIssue) string {
	var parts []string
	seen := map[string]bool{}
	for _, is := range issues {
		t := strings.TrimSpace(is.Diagnostics)
		if t == "" && is.Details != nil {
			t = strings.TrimSpace(is.Details.Text)
			if t == "" && len(is.Details.Coding) > 0 {
				t = strings.TrimSpace(is.Details.Coding[0].Display)
				if t == "" {
					t = strings.TrimSpace(is.Details.Coding[0].Code)
				}
			}
		}
		if t == "" {
			t = "issue " + strings.TrimSpace(is.Code)
		}
		t = oneLine(t)
		if !seen[t] {
			seen[t] = true
			parts = append(parts, t)
		}
	}
	return clip("The record refused the document: "+strings.Join(parts, "; "), mhdReasonLimit)
}

// entryRefusal explains a non-2xx entry of a transaction-response.
func entryRefusal(r *fhirResponse) string {
	if len(r.Outcome) > 0 {
		var oo fhirBundle
		if json.Unmarshal(r.Outcome, &oo) == nil && len(oo.Issue) > 0 {
			return issueText(oo.Issue)
		}
	}
	return clip("The record refused the document (status "+oneLine(r.Status)+").", mhdReasonLimit)
}

// httpStatusCode reads the code at the start of an entry's status ("201
// Created"), 0 if none.
func httpStatusCode(s string) int {
	s = strings.TrimSpace(s)
	if len(s) < 3 {
		return 0
	}
	n, err := strconv.Atoi(s[:3])
	if err != nil {
		return 0
	}
	return n
}

// locationID is the logical id in a location ("DocumentReference/123",
// "https://h/fhir/DocumentReference/123/_history/1") after the type.
func locationID(loc, typ string) string {
	parts := strings.Split(loc, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == typ {
			return clip(parts[i+1], 64)
		}
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' || r == '\t' }), " ")
}

// clip bounds s to n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
