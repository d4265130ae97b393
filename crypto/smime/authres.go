package smime

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// AuthResult is the result of the "smime" method of RFC 7281 for
// Authentication-Results (RFC 8601): smime=<status>, with the properties
// of the ptype "body" that RFC 7281 §3 registers: body.smime-identifier
// (the signer's address), body.smime-serial and body.smime-issuer (the
// signer's certificate), and reason= when there is one.
func (r Result) AuthResult() authres.Result {
	params := map[string]string{}
	if r.Reason != "" {
		params["reason"] = r.Reason
	}
	if r.Signer != "" {
		params["body.smime-identifier"] = headerSafe(r.Signer)
	}
	if r.Cert != nil && r.Status != StatusNone {
		params["body.smime-serial"] = strings.ToUpper(r.Cert.SerialNumber.Text(16))
		params["body.smime-issuer"] = headerSafe(r.Cert.Issuer.String())
	}
	status := r.Status
	if status == "" {
		status = StatusNone
	}
	return &authres.GenericResult{Method: "smime", Value: authres.ResultValue(status), Params: params}
}

// Field returns the Authentication-Results field for this result under
// authServID (RFC 8601 §2.2), with its CRLF.
func (r Result) Field(authServID string) string {
	// go-msgauth ends a result without properties with a space.
	v := strings.TrimRight(authres.Format(authServID, []authres.Result{r.AuthResult()}), " ")
	return fmt.Sprintf("Authentication-Results: %s\r\n", v)
}

// headerSafe keeps a value within printable ASCII without quotes or
// backslashes (go-msgauth quotes the value but does not escape a
// backslash), at most 200 characters.
func headerSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		if c := s[i]; c >= ' ' && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
