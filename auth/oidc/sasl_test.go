package oidc_test

import (
	"testing"

	"github.com/emersion/go-sasl"
)

// For the lead (imap/, smtp/): go-sasl's OAUTHBEARER server, after it
// has sent the failure status (RFC 7628 §3.2.2), reads the client's
// dummy response with `len(response) != 1 && response[0] != 0x01`. An
// empty response (an empty line: what XOAUTH2 clients send, and what an
// IMAP or SMTP client may send) indexes response[0] and panics; go-imap
// and go-smtp recover it, log a stack trace and drop the connection. The
// test records that behaviour, and the two others of that condition: a
// one-byte response other than %x01 and a longer one starting with %x01
// are both taken as the dummy response.
func TestOIDCGoSASLOAuthBearerEmptyResponseAfterFailure(t *testing.T) {
	fail := func(sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
		return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
	}
	ir := []byte("n,a=a@carepost.test,\x01auth=Bearer x.y.z\x01\x01")
	next := func(resp []byte) (panicked bool, err error) {
		s := sasl.NewOAuthBearerServer(fail)
		chal, done, err := s.Next(ir)
		if done || err != nil || string(chal) != `{"status":"invalid_token","schemes":"bearer","scope":""}` {
			t.Fatalf("first step: %q %v %v", chal, done, err)
		}
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		_, _, err = s.Next(resp)
		return false, err
	}
	if p, err := next([]byte{0x01}); p || err == nil || err.Error() != "OAUTHBEARER authentication error (invalid_token)" {
		t.Fatalf("%%x01: panicked %v, %v", p, err)
	}
	for _, resp := range [][]byte{{}, nil} {
		if p, err := next(resp); !p {
			t.Fatalf("an empty response (%#v) did not panic (%v): go-sasl was fixed, the guard may go", resp, err)
		}
	}
	// Wrongly accepted as the dummy response: "x" and "\x01\x01".
	for _, resp := range []string{"x", "\x01\x01"} {
		if p, err := next([]byte(resp)); p || err == nil || err.Error() != "OAUTHBEARER authentication error (invalid_token)" {
			t.Fatalf("%q: panicked %v, %v", resp, p, err)
		}
	}
}
