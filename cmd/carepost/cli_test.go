package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runIn runs one command line in-process, with no --data added.
func runIn(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// leaves walks the command tree: every command that runs, with its path.
func leaves(c *command, path []string, f func(c *command, path []string)) {
	for _, s := range c.subs {
		p := append(append([]string(nil), path...), s.name)
		if s.setup != nil {
			f(s, p)
		}
		leaves(s, p, f)
	}
}

// Every command answers -h and --help on standard output with exit 0,
// listing each of its flags with a description; every group lists its
// subcommands.
func TestEveryCommandHelp(t *testing.T) {
	n := 0
	leaves(rootCommand(), nil, func(c *command, path []string) {
		n++
		fs := newFlagSet(strings.Join(path, " "), &commonFlags{})
		c.setup(fs)
		if c.summary == "" {
			t.Errorf("carepost %s has no summary", strings.Join(path, " "))
		}
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), path...), h)
			out, errs, code := runIn(args...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage:\n  carepost "+strings.Join(path, " ")) {
				t.Errorf("carepost %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, errs, out)
				continue
			}
			fs.VisitAll(func(f *flag.Flag) {
				if strings.TrimSpace(f.Usage) == "" {
					t.Errorf("carepost %s: --%s has no description", strings.Join(path, " "), f.Name)
				}
				if !strings.Contains(out, "  --"+f.Name+" ") && !strings.Contains(out, "  --"+f.Name+"\n") {
					t.Errorf("carepost %s: --%s is not in the help:\n%s", strings.Join(args, " "), f.Name, out)
				}
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(out, f.DefValue) {
					t.Errorf("carepost %s: the default of --%s (%s) is not in the help", strings.Join(path, " "), f.Name, f.DefValue)
				}
			})
			for _, r := range c.required {
				if !strings.Contains(out, "(required)") || fs.Lookup(r) == nil {
					t.Errorf("carepost %s: required --%s not marked or not a flag", strings.Join(path, " "), r)
				}
			}
		}
		// carepost help PATH says the same.
		out, _, code := runIn(append([]string{"help"}, path...)...)
		if code != 0 || !strings.HasPrefix(out, "Usage:\n  carepost "+strings.Join(path, " ")) {
			t.Errorf("carepost help %s: exit %d\n%s", strings.Join(path, " "), code, out)
		}
	})
	if n < 25 {
		t.Fatalf("only %d commands found", n)
	}
	for _, group := range []string{"dir", "user", "trust", "pki", "bench"} {
		for _, h := range []string{"-h", "--help", "help", ""} {
			args := []string{group}
			if h != "" {
				args = append(args, h)
			}
			out, _, code := runIn(args...)
			if code != 0 || !strings.Contains(out, "Subcommands:") {
				t.Errorf("carepost %s: exit %d\n%s", strings.Join(args, " "), code, out)
			}
		}
	}
	for _, args := range [][]string{{}, {"help"}, {"-h"}, {"--help"}} {
		out, _, code := runIn(args...)
		if code != 0 || !strings.Contains(out, "dir add-professional") || !strings.Contains(out, "--data DIR") {
			t.Errorf("carepost %v: exit %d\n%s", args, code, out)
		}
	}
	out, _, code := runIn("version")
	if code != 0 || !strings.HasPrefix(out, "carepost ") || !strings.Contains(out, "\ncommit: ") || !strings.Contains(out, "\ngo: go1.") {
		t.Errorf("carepost version: exit %d\n%s", code, out)
	}
}

// An administrative command where there is no data directory refuses,
// naming the directory it looked for, and creates nothing: not with
// --data, not with the default ./carepost-data, not with --config.
func TestNothingCreatedByAccident(t *testing.T) {
	root := rootCommand()
	work := t.TempDir()
	t.Chdir(work)
	missing := filepath.Join(work, "nowhere")
	conf := filepath.Join(work, "carepost.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "data = %q\n", filepath.Join(work, "from-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	leaves(root, nil, func(c *command, path []string) {
		switch path[0] {
		case "serve", "init", "version":
			return
		case "bench":
			if path[1] != "users" {
				return // load generators: no data directory
			}
		case "dmp":
			if path[1] == "pack" {
				return // writes a package from files: no data directory
			}
		}
		n++
		args := append([]string(nil), path...)
		for range c.minArgs {
			args = append(args, "someone@carepost.test")
		}
		for _, r := range c.required {
			args = append(args, "--"+r, "x")
		}
		for _, where := range []struct {
			flags []string
			dir   string
		}{
			{[]string{"--data", missing}, missing},
			{nil, filepath.Join(work, "carepost-data")},
			{[]string{"--config", conf}, filepath.Join(work, "from-config")},
		} {
			full := append(append([]string(nil), where.flags...), args...)
			out, errs, code := runIn(full...)
			if code != 1 || !strings.Contains(errs, "there is no Carepost data directory at "+where.dir) || !strings.Contains(errs, "--data DIR") {
				t.Errorf("carepost %s: exit %d, stdout %q, stderr %q", strings.Join(full, " "), code, out, errs)
			}
		}
		ents, _ := os.ReadDir(work)
		if len(ents) != 1 { // the configuration file alone
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("carepost %s created %v", strings.Join(args, " "), names)
		}
	})
	if n < 20 {
		t.Fatalf("only %d administrative commands tried", n)
	}
	// An empty directory is not a data directory either.
	empty := t.TempDir()
	if _, errs, code := runIn("dir", "list", "--data", empty); code != 1 || !strings.Contains(errs, "no Carepost data directory") {
		t.Fatalf("dir list in an empty directory: %d %s", code, errs)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("dir list filled an empty directory: %v", ents)
	}
}

// init creates a data directory once, says where the key is, and leaves
// an existing one alone.
func TestInit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	out, errs, code := runIn("init", "--data", data)
	if code != 0 || !strings.Contains(out, "The at-rest key was created at "+filepath.Join(data, "keys", "at-rest.key")) ||
		!strings.Contains(out, "Back it up now") {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	// --data before the command works as well as after.
	if out, errs, code := runIn("--data", data, "dir", "list"); code != 0 || out != "no entries\n" {
		t.Fatalf("dir list after init: exit %d %q %q", code, out, errs)
	}
	_, errs, code = runIn("init", "--data", data)
	if code != 1 || !strings.Contains(errs, "is a Carepost data directory already: nothing was changed") {
		t.Fatalf("second init: exit %d %q", code, errs)
	}
	// A data directory whose key is gone is refused, not given a new key.
	if err := os.Rename(filepath.Join(data, "keys", "at-rest.key"), filepath.Join(data, "key.bak")); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runIn("dir", "list", "--data", data); code != 1 || !strings.Contains(errs, "at-rest key") || !strings.Contains(errs, "is missing") {
		t.Fatalf("dir list without the key: exit %d %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(data, "keys", "at-rest.key")); err == nil {
		t.Fatal("a new at-rest key was made")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func serveConfig(t *testing.T, data, submissions string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "carepost.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `data = %q
hostname = "localhost"
[listen]
smtp = ""
submission = ""
submissions = %q
imap = ""
imaps = ""
https = ""
ldap = ""
ldaps = ""
`, data, submissions), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// A first serve that cannot listen leaves no data directory; one that
// starts says once where the at-rest key is.
func TestServeFirstStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data := filepath.Join(t.TempDir(), "data")
	_, errs, code := runIn("serve", "--config", serveConfig(t, data, busy.Addr().String()))
	if code != 1 || !strings.Contains(errs, "cannot listen on "+busy.Addr().String()) {
		t.Fatalf("serve on a busy port: exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("the failed first start left a data directory behind")
	}

	conf := serveConfig(t, data, "127.0.0.1:0")
	serve := func() string {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr syncBuffer
		done := make(chan int)
		go func() {
			done <- run(ctx, []string{"serve", "--config", conf}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), "CA certificate for your mail clients") {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("serve did not start:\n%s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("serve: exit %d\n%s", code, stderr.String())
		}
		return stderr.String()
	}
	const notice = "The at-rest key was created at "
	if out := serve(); !strings.Contains(out, notice+filepath.Join(data, "keys", "at-rest.key")) || !strings.Contains(out, "Back it up now") {
		t.Fatalf("first start did not tell where the key is:\n%s", out)
	}
	if out := serve(); strings.Contains(out, notice) {
		t.Fatalf("second start told of a new key again:\n%s", out)
	}
}

// Each refusal of the command line answers with its sentence.
func TestCommandLineRefusals(t *testing.T) {
	data := newData(t)
	ok := func(stdin string, args ...string) string {
		t.Helper()
		out, errs, code := carepost(t, data, stdin, args...)
		if code != 0 {
			t.Fatalf("carepost %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	ok("", "dir", "add-professional", "--id", "810001045367", "--first", "Marie", "--last", "Curie",
		"--profession", "10", "--specialty", "SM54", "--address", "marie.curie@carepost.test")
	ok("", "user", "app-password", "marie.curie@carepost.test", "--label", "Phone")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dir", "add-professional", "--id", "810001045383", "--first", "A", "--last", "B", "--profession", "10"}, 2,
			"carepost: --address is required\n"},
		{[]string{"dir", "add-professional", "--profession", "10"}, 2,
			"carepost: --id, --first, --last and --address are required\n"},
		{[]string{"dir", "add-patient", "--ins", "279035121518989"}, 2, "--first and --last are required"},
		{[]string{"dir", "add-professional", "--id", "810001045367", "--first", "M", "--last", "C", "--profession", "10", "--address", "mc@carepost.test"}, 1,
			"The national identifier 810001045367 already belongs to marie.curie@carepost.test"},
		{[]string{"dir", "add-professional", "--id", "810001045367", "--first", "M", "--last", "C", "--profession", "10", "--address", "mc@carepost.test", "--allow-duplicate-id"}, 1,
			"--allow-duplicate-id needs --reason"},
		{[]string{"dir", "add-mailbox", "--kind", "per", "--address", "x@carepost.test"}, 1,
			"professionals and patients have commands of their own"},
		{[]string{"dir", "add-mailbox", "--kind", "boss", "--address", "x@carepost.test"}, 1, `Unknown kind "boss"`},
		{[]string{"dir", "list", "--status", "gone"}, 1, `Unknown status "gone"`},
		{[]string{"dir", "show", "--frobnicate"}, 2, "carepost: unknown flag --frobnicate\n"},
		{[]string{"dir", "list", "--limit", "many"}, 2, "--limit"},
		{[]string{"dir", "list", "extra"}, 2, "dir list takes no argument"},
		{[]string{"dir", "frob"}, 2, `dir: unknown subcommand "frob"`},
		{[]string{"user", "app-password", "marie.curie@carepost.test", "--label", "phone"}, 1,
			`already has an application password labelled "Phone"`},
		{[]string{"trust", "add-domain", "carepost.test"}, 1, "The domain carepost.test is hosted by this server"},
		{[]string{"pki", "issue", "nobody@carepost.test"}, 1, "nobody@carepost.test is not a mailbox of the directory: certificates are issued only for the mailboxes of the directory"},
		{[]string{"pki", "export", "nobody@carepost.test"}, 1, "nobody@carepost.test has no S/MIME certificate valid now (carepost pki issue nobody@carepost.test makes them"},
		{[]string{"pki", "export", "frob"}, 1, `"frob" is neither ca, server nor a mailbox address`},
	}
	for _, tc := range cases {
		out, errs, code := carepost(t, data, "", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("carepost %s: exit %d (want %d), stderr %q should contain %q (stdout %q)", strings.Join(tc.args, " "), code, tc.code, errs, tc.want, out)
		}
		for _, goIdent := range []string{"AddProfessional", "AddPatient", "ProfessionalInput", "*directory", "%!"} {
			if strings.Contains(errs, goIdent) {
				t.Errorf("carepost %s: %q in the message %q", strings.Join(tc.args, " "), goIdent, errs)
			}
		}
	}

	// A duplicate allowed with its reason; the reason is shown.
	ok("", "dir", "add-professional", "--id", "810001045367", "--first", "Marie", "--last", "Curie", "--profession", "10",
		"--address", "m.curie@carepost.test", "--allow-duplicate-id", "--reason", "second practice")
	if out := ok("", "dir", "show", "m.curie@carepost.test"); !strings.Contains(out, "duplicate id reason:  second practice") {
		t.Errorf("dir show of the duplicate:\n%s", out)
	}
	// Labels beside codes; JSON without absent times.
	out := ok("", "dir", "show", "marie.curie@carepost.test")
	for _, want := range []string{"profession:   10 (Médecin)", "specialty:    SM54 (Médecine générale)"} {
		if !strings.Contains(out, want) {
			t.Errorf("dir show lacks %q:\n%s", want, out)
		}
	}
	out = ok("", "dir", "show", "marie.curie@carepost.test", "--json")
	if !strings.Contains(out, `"profession_label": "Médecin"`) || !strings.Contains(out, `"created": "`) ||
		strings.Contains(out, "last_login") || strings.Contains(out, "0001-01-01") {
		t.Errorf("dir show --json:\n%s", out)
	}

	// trust add-domain: once.
	ok("", "trust", "add-domain", "ch-exemple.mssante.fr", "--description", "CH Exemple")
	if _, errs, code := carepost(t, data, "", "trust", "add-domain", "CH-Exemple.mssante.fr"); code != 1 || !strings.Contains(errs, "The domain ch-exemple.mssante.fr is in the trust space already.") {
		t.Errorf("trust add-domain twice: exit %d %q", code, errs)
	}
	if out := ok("", "trust", "list"); strings.Count(out, "ch-exemple.mssante.fr") != 1 {
		t.Errorf("trust list:\n%s", out)
	}

	// pki issue: no new certificates without --force.
	ok("", "pki", "issue", "marie.curie@carepost.test")
	cert1 := ok("", "pki", "export", "marie.curie@carepost.test")
	if _, errs, code := carepost(t, data, "", "pki", "issue", "marie.curie@carepost.test"); code != 1 || !strings.Contains(errs, "has S/MIME certificates already") || !strings.Contains(errs, "give --force to issue new ones") {
		t.Errorf("pki issue twice: exit %d %q", code, errs)
	}
	if cert := ok("", "pki", "export", "marie.curie@carepost.test"); cert != cert1 {
		t.Error("the refused pki issue changed the certificate")
	}
	ok("", "pki", "issue", "marie.curie@carepost.test", "--force")
	if cert := ok("", "pki", "export", "marie.curie@carepost.test"); cert == cert1 {
		t.Error("pki issue --force kept the certificate")
	}
	if out := ok("", "pki", "export", "server"); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("pki export server:\n%s", out)
	}

	// dir list and dir search find patients; the filters apply.
	ok("", "dir", "add-patient", "--ins", "279035121518989", "--first", "Louise", "--last", "Martin")
	if out := ok("", "dir", "search", "martin", "--kind", "patient"); !strings.Contains(out, "279035121518989@patient.carepost.test") {
		t.Errorf("dir search --kind patient:\n%s", out)
	}
	if out := ok("", "dir", "list", "--kind", "per", "--domain", "carepost.test"); strings.Count(out, "@carepost.test") != 2 || strings.Contains(out, "patient.carepost.test") {
		t.Errorf("dir list --kind per --domain carepost.test:\n%s", out)
	}
	ok("", "dir", "suspend", "m.curie@carepost.test")
	if out := ok("", "dir", "list", "--status", "suspended", "--json"); !strings.Contains(out, `"address": "m.curie@carepost.test"`) || strings.Contains(out, "marie.curie") {
		t.Errorf("dir list --status suspended --json:\n%s", out)
	}
	// dir resume reopens a suspended mailbox, and only that.
	if out := ok("", "dir", "resume", "m.curie@carepost.test"); !strings.Contains(out, "m.curie@carepost.test is now active") {
		t.Errorf("dir resume:\n%s", out)
	}
	if out := ok("", "dir", "resume", "m.curie@carepost.test"); !strings.Contains(out, "active already") {
		t.Errorf("dir resume of an active mailbox:\n%s", out)
	}
	ok("", "dir", "suspend", "m.curie@carepost.test")

	// user app-password list|revoke, and the older spellings.
	if out := ok("", "user", "app-password", "list", "marie.curie@carepost.test"); !strings.Contains(out, "Phone") {
		t.Errorf("app-password list:\n%s", out)
	}
	if out := ok("", "user", "app-password", "revoke", "marie.curie@carepost.test", "phone"); !strings.Contains(out, "(Phone) of marie.curie@carepost.test revoked") {
		t.Errorf("app-password revoke:\n%s", out)
	}
	if out := ok("", "user", "app-passwords", "marie.curie@carepost.test"); !strings.Contains(out, "has no application passwords") {
		t.Errorf("app-passwords:\n%s", out)
	}
}
