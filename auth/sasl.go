package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// SASL mechanisms beyond go-sasl's names.
const (
	SASLExternal    = sasl.External
	SASLOAuthBearer = sasl.OAuthBearer
	// SASLXOAuth2 is Google's and Microsoft's older token mechanism,
	// which most mail clients still use for OAuth 2.0
	// (https://developers.google.com/gmail/imap/xoauth2-protocol).
	SASLXOAuth2 = "XOAUTH2"
)

// BearerCheck checks a token given with OAUTHBEARER or XOAUTH2; authzid is
// the identity the client named (OAUTHBEARER "a=", XOAUTH2 "user="). It
// returns nil once the session is logged in, or the error the protocol
// adapter answers the client with at the end of the exchange.
type BearerCheck func(authzid, token string) error

// ErrMalformedSASL is the error of an exchange whose messages could not
// be read.
var ErrMalformedSASL = errors.New("auth: malformed SASL exchange")

// NewOAuthBearerServer returns the server side of OAUTHBEARER (RFC 7628):
// go-sasl's parser, with check called on the token. A failure follows
// RFC 7628 §3.2.2: the server sends the JSON status as a challenge
// ({"status":"invalid_token","schemes":"bearer","scope":scope}), the client
// answers with a dummy response (%x01), and the exchange ends with the
// error check returned. go-sasl's own handling of that last step reads
// the first byte of the response without checking its length (an empty
// response would panic), so this wrapper answers it itself.
func NewOAuthBearerServer(scope string, check BearerCheck) sasl.Server {
	b := &bearerServer{}
	b.inner = sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
		if err := check(o.Username, o.Token); err != nil {
			b.err = err
			return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer", Scope: scope}
		}
		return nil
	})
	return b
}

type bearerServer struct {
	inner  sasl.Server
	err    error // check's refusal, nil if check was not reached
	failed bool  // the failure status was sent: the next response ends it
}

func (b *bearerServer) Next(response []byte) ([]byte, bool, error) {
	if b.failed {
		return nil, true, b.failure()
	}
	challenge, done, err := b.inner.Next(response)
	if err != nil {
		return nil, true, ErrMalformedSASL
	}
	if !done && response != nil {
		// A challenge after the client's message is the failure
		// status (RFC 7628 §3.2.2): a parse error of go-sasl's, or
		// check's refusal.
		b.failed = true
	}
	return challenge, done, nil
}

func (b *bearerServer) failure() error {
	if b.err != nil {
		return b.err
	}
	return ErrMalformedSASL
}

// NewXOAuth2Server returns the server side of XOAUTH2: the client's message
// is "user=" authzid ^A "auth=Bearer " token ^A ^A; a failure is a
// challenge holding the JSON status ({"status":"401","schemes":"bearer",
// "scope":scope}), which the client answers with an empty response, and
// the exchange then ends with the error check returned.
func NewXOAuth2Server(scope string, check BearerCheck) sasl.Server {
	return &xoauth2Server{scope: scope, check: check}
}

type xoauth2Server struct {
	scope  string
	check  BearerCheck
	step   int
	err    error
	failed bool
}

func (x *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	switch {
	case x.failed:
		return nil, true, x.err
	case response == nil && x.step == 0:
		x.step++
		return []byte{}, false, nil // no initial response: ask for it
	case x.step > 1:
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
	x.step = 2
	user, token, err := ParseXOAuth2(response)
	if err != nil {
		return nil, true, ErrMalformedSASL
	}
	if err := x.check(user, token); err != nil {
		x.err, x.failed = err, true
		status, _ := json.Marshal(map[string]string{"status": "401", "schemes": "bearer", "scope": x.scope})
		return status, false, nil
	}
	return nil, true, nil
}

// ParseXOAuth2 reads the client's XOAUTH2 message: "user=" USER ^A
// "auth=Bearer " TOKEN ^A ^A (the token type in any case).
func ParseXOAuth2(msg []byte) (user, token string, err error) {
	if !bytes.HasSuffix(msg, []byte("\x01\x01")) {
		return "", "", ErrMalformedSASL
	}
	for _, field := range bytes.Split(msg[:len(msg)-2], []byte{0x01}) {
		k, v, ok := bytes.Cut(field, []byte{'='})
		if !ok {
			return "", "", ErrMalformedSASL
		}
		switch string(k) {
		case "user":
			user = string(v)
		case "auth":
			scheme, tok, ok := strings.Cut(string(v), " ")
			if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
				return "", "", ErrMalformedSASL
			}
			token = tok
		default:
			return "", "", ErrMalformedSASL
		}
	}
	if token == "" {
		return "", "", ErrMalformedSASL
	}
	return user, token, nil
}
