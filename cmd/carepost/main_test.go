package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// carepost runs one command line in-process against the data directory.
func carepost(t *testing.T, data, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append(args, "--data", data), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// newData makes a data directory with carepost init.
func newData(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if out, errs, code := carepost(t, data, "", "init"); code != 0 {
		t.Fatalf("carepost init: exit %d\n%s%s", code, out, errs)
	}
	return data
}

func TestCommandLineWalkthrough(t *testing.T) {
	data := newData(t)
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errs, code := carepost(t, data, stdin, args...)
		if code != 0 {
			t.Fatalf("carepost %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	out := mustRun("", "dir", "add-professional", "--id", "810001045367", "--first", "Marie", "--last", "Curie",
		"--profession", "10", "--specialty", "SM54", "--address", "Marie.Curie@carepost.test")
	if !strings.Contains(out, "marie.curie@carepost.test") {
		t.Fatalf("add-professional said %q", out)
	}
	mustRun("", "dir", "add-professional", "--id", "0012600631", "--first", "Jean", "--last", "Martin",
		"--profession", "10", "--address", "jean.martin@carepost.test")
	mustRun("", "dir", "add-mailbox", "--kind", "org", "--address", "cardiologie@carepost.test", "--member", "jean.martin@carepost.test")
	// Roles in the shared mailbox: add-mailbox's members are members;
	// add-member adds a manager, or changes a role; remove-member removes.
	if out = mustRun("", "dir", "add-member", "Cardiologie@carepost.test", "Marie.Curie@carepost.test", "--role", "manager"); out != "marie.curie@carepost.test is now a manager of cardiologie@carepost.test\n" {
		t.Fatalf("add-member said %q", out)
	}
	out = mustRun("", "dir", "members", "cardiologie@carepost.test")
	if want := "MEMBER                     ROLE\njean.martin@carepost.test  member\nmarie.curie@carepost.test  manager\n"; out != want {
		t.Fatalf("dir members:\n%s\nwant:\n%s", out, want)
	}
	mustRun("", "dir", "add-member", "cardiologie@carepost.test", "jean.martin@carepost.test", "--role", "manager")
	mustRun("", "dir", "add-member", "cardiologie@carepost.test", "jean.martin@carepost.test")
	if out = mustRun("", "dir", "remove-member", "cardiologie@carepost.test", "marie.curie@carepost.test"); !strings.Contains(out, "no longer a member") {
		t.Fatalf("remove-member said %q", out)
	}
	if out = mustRun("", "dir", "members", "cardiologie@carepost.test", "--json"); !strings.Contains(out, `"address": "jean.martin@carepost.test",
    "role": "member"`) || strings.Contains(out, "marie") {
		t.Fatalf("dir members --json:\n%s", out)
	}
	mustRun("marie: a long passphrase\n", "user", "set-password", "marie.curie@carepost.test")
	if pw := strings.TrimSpace(mustRun("", "user", "app-password", "marie.curie@carepost.test", "--label", "thunderbird")); len(pw) < 16 {
		t.Fatalf("application password %q is too short", pw)
	}
	// Flags may come after the positional argument.
	out = mustRun("", "dir", "show", "marie.curie@carepost.test")
	for _, want := range []string{"810001045367", "SM54", "Curie", "active"} {
		if !strings.Contains(out, want) {
			t.Errorf("dir show lacks %q:\n%s", want, out)
		}
	}
	out = mustRun("", "dir", "search", "martin")
	if !strings.Contains(out, "jean.martin@carepost.test") || strings.Contains(out, "marie.curie") {
		t.Fatalf("dir search martin:\n%s", out)
	}
	mustRun("", "dir", "suspend", "jean.martin@carepost.test")
	if out = mustRun("", "dir", "show", "jean.martin@carepost.test"); !strings.Contains(out, "suspended") {
		t.Fatalf("not suspended:\n%s", out)
	}
	mustRun("", "trust", "add-domain", "ch-exemple.mssante.fr", "--description", "CH Exemple")
	if out = mustRun("", "trust", "list"); !strings.Contains(out, "ch-exemple.mssante.fr") {
		t.Fatalf("trust list:\n%s", out)
	}
	mustRun("", "pki", "init")
	if out = mustRun("", "pki", "export", "ca"); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("pki export ca:\n%s", out)
	}
	mustRun("", "pki", "issue", "marie.curie@carepost.test")
	if out = mustRun("", "pki", "export", "marie.curie@carepost.test"); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("pki export address:\n%s", out)
	}
}

func TestCommandLineErrors(t *testing.T) {
	data := newData(t)
	cases := []struct {
		args    []string
		stdin   string
		code    int
		mention string
	}{
		{[]string{"frobnicate"}, "", 2, "unknown command"},
		{[]string{"dir", "add-professional", "--id", "810001045368", "--first", "A", "--last", "B", "--profession", "10", "--address", "a@carepost.test"}, "", 1, "key"},
		{[]string{"dir", "add-professional", "--id", "810001045367", "--first", "A", "--last", "B", "--profession", "10", "--address", "a@gmail.com"}, "", 1, "gmail.com"},
		{[]string{"dir", "show", "nobody@carepost.test"}, "", 1, "nobody@carepost.test"},
		{[]string{"user", "set-password", "nobody@carepost.test"}, "a long enough password\n", 1, "nobody@carepost.test"},
		{[]string{"dir", "show"}, "", 2, "ADDRESS"},
		{[]string{"pki", "export", "nobody@carepost.test"}, "", 1, "pki issue"},
		{[]string{"dir", "add-member", "org@carepost.test"}, "", 2, "give ORG ADDRESS"},
		{[]string{"dir", "add-member", "org@carepost.test", "a@carepost.test", "--role", "boss"}, "", 1, "use member or manager"},
		{[]string{"dir", "members", "nobody@carepost.test"}, "", 1, "nobody@carepost.test"},
		{[]string{"dir", "remove-member", "nobody@carepost.test", "a@carepost.test"}, "", 1, "nobody@carepost.test"},
	}
	for _, tc := range cases {
		out, errs, code := carepost(t, data, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(strings.ToLower(errs), strings.ToLower(tc.mention)) {
			t.Errorf("carepost %s: exit %d (want %d), stderr %q should mention %q (stdout %q)", strings.Join(tc.args, " "), code, tc.code, errs, tc.mention, out)
		}
	}
}

// `carepost bench users` makes the accounts the stress tools expect, and
// running it again only resets their passwords.
func TestBenchUsers(t *testing.T) {
	data := newData(t)
	for i := 0; i < 2; i++ {
		out, errs, code := carepost(t, data, "", "bench", "users", "--count", "3", "--password", "stress password")
		if code != 0 || !strings.Contains(out, "3 accounts ready") {
			t.Fatalf("run %d: exit %d\n%s%s", i, code, out, errs)
		}
	}
	out, _, code := carepost(t, data, "", "dir", "show", "user3@carepost.test")
	if code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("user3 not created:\n%s", out)
	}
	// Another format: the same synthetic numbers, allowed with a reason.
	if out, errs, code := carepost(t, data, "", "bench", "users", "--count", "2", "--format", "imaptest%d@carepost.test", "--password", "stress password"); code != 0 {
		t.Fatalf("bench users --format: exit %d\n%s%s", code, out, errs)
	}
	if out, _, _ := carepost(t, data, "", "dir", "show", "imaptest2@carepost.test"); !strings.Contains(out, "test account of carepost bench users") {
		t.Fatalf("imaptest2:\n%s", out)
	}
	if _, errs, code := carepost(t, data, "", "bench", "users", "--count", "3"); code != 2 || !strings.Contains(errs, "--password") {
		t.Fatalf("missing password accepted: %d %s", code, errs)
	}
}
