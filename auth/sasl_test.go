package auth_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/carepost/carepost/auth"
)

// The RFC 7628 failure dance: the status as a challenge, then the error
// after the client's dummy response, whatever that response is (an
// empty one must not panic, as go-sasl's own last step would).
func TestOAuthBearerFailure(t *testing.T) {
	refused := errors.New("refused")
	for _, last := range [][]byte{{0x01}, {}, nil, []byte("junk")} {
		var gotUser, gotToken string
		s := auth.NewOAuthBearerServer("openid email", func(authzid, token string) error {
			gotUser, gotToken = authzid, token
			return refused
		})
		ch, done, err := s.Next([]byte("n,a=alice@carepost.test,\x01auth=Bearer tok123\x01\x01"))
		if err != nil || done {
			t.Fatalf("first step: done %v err %v", done, err)
		}
		var status map[string]string
		if err := json.Unmarshal(ch, &status); err != nil || status["status"] != "invalid_token" || status["scope"] != "openid email" {
			t.Fatalf("failure status = %q (%v)", ch, err)
		}
		if gotUser != "alice@carepost.test" || gotToken != "tok123" {
			t.Fatalf("check got %q %q", gotUser, gotToken)
		}
		_, done, err = s.Next(last)
		if !done || !errors.Is(err, refused) {
			t.Fatalf("last step after %q: done %v err %v, want the check's error", last, done, err)
		}
	}
	// A malformed message: the status, then ErrMalformedSASL.
	s := auth.NewOAuthBearerServer("", func(string, string) error { t.Fatal("check called"); return nil })
	if _, done, err := s.Next([]byte("garbage")); done || err != nil {
		t.Fatalf("malformed: done %v err %v", done, err)
	}
	if _, done, err := s.Next(nil); !done || !errors.Is(err, auth.ErrMalformedSASL) {
		t.Fatalf("after malformed: done %v err %v", done, err)
	}
	// Success.
	s = auth.NewOAuthBearerServer("", func(string, string) error { return nil })
	if _, done, err := s.Next([]byte("n,,\x01auth=Bearer t\x01\x01")); !done || err != nil {
		t.Fatalf("success: done %v err %v", done, err)
	}
}

func TestXOAuth2(t *testing.T) {
	s := auth.NewXOAuth2Server("openid", func(user, token string) error {
		if user != "alice@carepost.test" || token != "tok" {
			t.Errorf("check got %q %q", user, token)
		}
		return nil
	})
	if ch, done, err := s.Next(nil); done || err != nil || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v", ch, done, err)
	}
	if _, done, err := s.Next([]byte("user=alice@carepost.test\x01auth=Bearer tok\x01\x01")); !done || err != nil {
		t.Fatalf("success: done %v err %v", done, err)
	}
	refused := errors.New("refused")
	s = auth.NewXOAuth2Server("openid", func(string, string) error { return refused })
	ch, done, err := s.Next([]byte("user=a@b.test\x01auth=bearer tok\x01\x01"))
	var status map[string]string
	if done || err != nil || json.Unmarshal(ch, &status) != nil || status["status"] != "401" {
		t.Fatalf("failure: %q %v %v", ch, done, err)
	}
	if _, done, err := s.Next(nil); !done || !errors.Is(err, refused) {
		t.Fatalf("after failure: %v %v", done, err)
	}
	for _, bad := range []string{"", "user=a", "user=a\x01auth=Basic x\x01\x01", "user=a\x01\x01", "auth=Bearer \x01\x01", "x=y\x01auth=Bearer t\x01\x01"} {
		if _, _, err := auth.ParseXOAuth2([]byte(bad)); err == nil {
			t.Errorf("ParseXOAuth2(%q) accepted", bad)
		}
	}
}

func FuzzParseXOAuth2(f *testing.F) {
	f.Add([]byte("user=alice@carepost.test\x01auth=Bearer tok\x01\x01"))
	f.Add([]byte("auth=Bearer t\x01\x01"))
	f.Add([]byte("\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		user, token, err := auth.ParseXOAuth2(b)
		if err == nil && token == "" {
			t.Fatalf("accepted an empty token (user %q)", user)
		}
		s := auth.NewOAuthBearerServer("", func(string, string) error { return errors.New("no") })
		for i := 0; i < 3; i++ {
			if _, done, _ := s.Next(b); done {
				break
			}
		}
	})
}
