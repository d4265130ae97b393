package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/carepost/carepost/auth/oidc/oidctest"
)

// The test issuer and its tokens: to try SASL OAUTHBEARER (RFC 7628) and
// XOAUTH2 by hand without a real OpenID Connect issuer (docs/oauth.md).

func oidcCommand() *command {
	return &command{name: "oidc", summary: "a test OpenID Connect issuer and its tokens, to try OAUTHBEARER and XOAUTH2 by hand",
		subs: []*command{oidcTestIssuer, oidcToken}}
}

// issuerDirName is the test issuer's directory in the data directory.
const issuerDirName = "oidc-test-issuer"

// issuerDir is --dir, or the test issuer's directory in the data
// directory, which must exist (a command creates no data directory).
func issuerDir(e *env, dir string) (string, error) {
	if dir != "" {
		return absPath(dir), nil
	}
	cfg, err := loadConfig(e.common)
	if err != nil {
		return "", err
	}
	if !exists(storeFile(cfg.Data)) {
		return "", noDataError(cfg, e.common)
	}
	return absPath(filepath.Join(cfg.Data, issuerDirName)), nil
}

var oidcTestIssuer = &command{name: "test-issuer", summary: "run a test OpenID Connect issuer on a loopback address until interrupted",
	long: `The issuer serves its discovery document and its keys over https, with a
certificate of its own CA; it keeps the CA, its signing key and its URL in
--dir (by default oidc-test-issuer in the data directory), so that they stay
the same across restarts on the same --listen address. It prints the
[auth.oidc] lines to paste into the server's configuration.

It has no login page: tokens are minted by 'carepost oidc token' with the key
in --dir, for any address. It listens on a loopback address only, and is for
trying OAUTHBEARER and XOAUTH2 by hand, never for production.`,
	setup: func(fs *flag.FlagSet) runner {
		listen := fs.String("listen", "127.0.0.1:8444", "loopback `ADDRESS:PORT` to listen on (127.0.0.1, [::1] or localhost; port 0: any free port)")
		dir := fs.String("dir", "", "`DIR` of the issuer's CA, key and URL (default <data>/"+issuerDirName+")")
		audience := fs.String("audience", oidctest.DefaultAudience, "`CLIENT_ID` that tokens carry in \"aud\" by default")
		return func(e *env, _ []string) error {
			if !oidctest.IsLoopback(*listen) {
				return usageError("--listen %s: the test issuer listens on a loopback address only (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): it mints tokens for anyone", *listen)
			}
			d, err := issuerDir(e, *dir)
			if err != nil {
				return err
			}
			iss, err := oidctest.New(oidctest.Options{Addr: *listen, Dir: d, Audience: *audience})
			if err != nil {
				return err
			}
			defer iss.Close()
			fmt.Fprintf(e.stdout, `test OpenID Connect issuer: %s (loopback only; for trying by hand, never for production)
its CA certificate:         %s
its key and state:          %s

Paste into the server's configuration (carepost.toml), then restart the server:

[auth.oidc]
issuer   = %q
audience = %q
claim    = "email"
claim_is = "address"
ca_file  = %q

Then mint a token for a mailbox of the directory, and log in with it:
  carepost oidc token --dir %s ADDRESS
  carepost oidc token --dir %s --format oauthbearer ADDRESS   (the SASL response, base64)
Running until interrupted (Ctrl-C).
`, iss.URL(), iss.CAFile(), d, iss.URL(), iss.Audience(), iss.CAFile(), shellQuote(d), shellQuote(d))
			ctx, stop := signal.NotifyContext(e.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		}
	}}

var oidcToken = &command{name: "token", summary: "mint an access token of the test issuer for a mailbox (or any claims) and print it",
	args: "[ADDRESS]", minArgs: 0, maxArgs: 1,
	long: `The token is signed with the key of the test issuer in --dir ('carepost oidc
test-issuer'), for its URL and audience. ADDRESS sets "sub" and "email" to it
and "email_verified" to true; --claim NAME=VALUE sets any claim (repeatable;
"email_verified" takes true or false). The issuer need not be running to
mint, but must be for the server to check the token.

--format oauthbearer prints the SASL OAUTHBEARER initial response (RFC 7628
§3.1) in base64, for an IMAP "a AUTHENTICATE OAUTHBEARER <it>" or an SMTP
"AUTH OAUTHBEARER <it>" typed by hand (openssl s_client); --format xoauth2
the XOAUTH2 one (user=ADDRESS ^A auth=Bearer TOKEN ^A^A). A negative --ttl
mints a token that has expired, to see the failure.`,
	setup: func(fs *flag.FlagSet) runner {
		dir := fs.String("dir", "", "the test issuer's `DIR` (default <data>/"+issuerDirName+")")
		audience := fs.String("audience", "", "the token's \"aud\", a `CLIENT_ID` (default the test issuer's)")
		ttl := fs.Duration("ttl", 5*time.Minute, "lifetime of the token, `DURATION` (up to 24h; negative: expired)")
		var claims claimList
		fs.Var(&claims, "claim", "a claim of the token, `NAME=VALUE` (repeatable), e.g. email=ADDRESS or idnat=810012345678")
		format := fs.String("format", "token", "what to print, `FORMAT`: token, or the base64 SASL response oauthbearer or xoauth2")
		return func(e *env, pos []string) error {
			d, err := issuerDir(e, *dir)
			if err != nil {
				return err
			}
			if len(pos) == 0 && len(claims) == 0 {
				return usageError("oidc token: give the ADDRESS of a mailbox, or claims with --claim NAME=VALUE")
			}
			if *ttl == 0 || *ttl > 24*time.Hour || *ttl < -24*time.Hour {
				return usageError("--ttl %v is not a lifetime between -24h and 24h, other than 0", *ttl)
			}
			switch *format {
			case "token", "oauthbearer", "xoauth2":
			default:
				return usageError("--format %q is not token, oauthbearer or xoauth2", *format)
			}
			c := map[string]any{}
			user := ""
			if len(pos) == 1 {
				user = strings.TrimSpace(pos[0])
				c["sub"], c["email"], c["email_verified"] = user, user, true
			}
			for _, kv := range claims {
				c[kv.name] = kv.value
			}
			if *audience != "" {
				c["aud"] = *audience
			}
			if user == "" {
				user, _ = c["email"].(string)
			}
			if _, ok := c["sub"]; !ok {
				c["sub"] = "test-user"
			}
			if *ttl < 0 {
				c["iat"] = time.Now().Add(2 * *ttl)
			}
			tok, _, err := oidctest.MintFromDir(d, c, *ttl)
			if err != nil {
				return err
			}
			switch *format {
			case "oauthbearer":
				// gs2-header "n,a=USER," then kvpairs (RFC 7628 §3.1).
				authz := ""
				if user != "" {
					authz = "a=" + saslName(user)
				}
				tok = base64.StdEncoding.EncodeToString([]byte("n," + authz + ",\x01auth=Bearer " + tok + "\x01\x01"))
			case "xoauth2":
				if user == "" {
					return usageError("--format xoauth2 needs the user's ADDRESS (or --claim email=ADDRESS)")
				}
				tok = base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + tok + "\x01\x01"))
			}
			_, err = fmt.Fprintln(e.stdout, tok)
			return err
		}
	}}

// saslName escapes "," and "=" in a GS2 authzid (RFC 5801 §4).
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// claimList is the repeatable --claim NAME=VALUE.
type claimList []struct {
	name  string
	value any
}

func (l *claimList) String() string {
	var parts []string
	for _, kv := range *l {
		parts = append(parts, fmt.Sprintf("%s=%v", kv.name, kv.value))
	}
	return strings.Join(parts, ",")
}

func (l *claimList) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("%q is not NAME=VALUE", s)
	}
	var v any = value
	if name == "email_verified" {
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("email_verified is true or false, not %q", value)
		}
		v = b
	}
	*l = append(*l, struct {
		name  string
		value any
	}{name, v})
	return nil
}

// shellQuote quotes a path for a command line to copy, when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
