package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDNSRecords: `dns records` prints, for each hosted domain, the MX,
// the RFC 6186 SRV records of the configured listeners (implicit TLS
// preferred, "." for what is not offered), the autoconfig and
// autodiscover records, and the DKIM records of `pki dkim`; notes say
// which listeners clients elsewhere cannot reach as configured.
func TestDNSRecords(t *testing.T) {
	data := newData(t)
	out, errs, code := carepost(t, data, "", "dns", "records")
	if code != 0 {
		t.Fatalf("dns records: %d %s", code, errs)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[l] = true
	}
	for _, d := range []string{"carepost.test", "patient.carepost.test"} {
		for _, want := range []string{
			d + ". IN MX 10 mail.carepost.test.",
			"_imaps._tcp." + d + ". IN SRV 0 1 9993 mail.carepost.test.",
			"_imap._tcp." + d + ". IN SRV 10 1 1143 mail.carepost.test.",
			"_submissions._tcp." + d + ". IN SRV 0 1 4465 mail.carepost.test.",
			"_submission._tcp." + d + ". IN SRV 10 1 5587 mail.carepost.test.",
			"_pop3._tcp." + d + ". IN SRV 0 0 0 .",
			"_pop3s._tcp." + d + ". IN SRV 0 0 0 .",
			"autoconfig." + d + ". IN CNAME mail.carepost.test.",
			"autodiscover." + d + ". IN CNAME mail.carepost.test.",
			"_autodiscover._tcp." + d + ". IN SRV 0 1 8443 mail.carepost.test.",
		} {
			if !lines[want] {
				t.Errorf("missing %q in\n%s", want, out)
			}
		}
	}
	// The DKIM records are those of `pki dkim`, each once.
	dkim, errs, code := carepost(t, data, "", "pki", "dkim")
	if code != 0 {
		t.Fatalf("pki dkim: %s", errs)
	}
	for _, rec := range strings.Split(strings.TrimSpace(dkim), "\n") {
		if strings.Count(out, rec+"\n") != 1 {
			t.Errorf("the DKIM record %q is not printed once", rec)
		}
	}
	// The embedded default listens on loopback, on other ports than the
	// standard ones: notes say so.
	for _, want := range []string{
		"; note: listen.imaps is 127.0.0.1:9993, a loopback address",
		"; note: listen.imaps is port 9993, not 993",
		"; note: listen.smtp is port 2525: other operators' servers reach an MX on port 25 only",
		"; note: listen.https is port 8443, not 443",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no note %q in\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, ";") && !strings.Contains(l, " IN ") {
			t.Errorf("not a zone-file line: %q", l)
		}
	}

	// --domain: that domain alone; a domain not hosted here: refused.
	one, _, code := carepost(t, data, "", "dns", "records", "--domain", "Patient.Carepost.Test")
	if code != 0 || strings.Contains(one, " carepost.test. IN MX") || strings.Contains(one, "\ncarepost.test. IN MX") || !strings.Contains(one, "\npatient.carepost.test. IN MX 10 mail.carepost.test.\n") {
		t.Errorf("--domain patient.carepost.test: %d\n%s", code, one)
	}
	if _, errs, code := carepost(t, data, "", "dns", "records", "--domain", "example.org"); code == 0 || !strings.Contains(errs, "example.org is not a domain hosted here") {
		t.Errorf("--domain example.org: %d %q", code, errs)
	}
}

// TestDNSRecordsFollowConfig: standard ports on a public address need no
// note; a listener that is off gets the "." target; no https, no
// autoconfig records.
func TestDNSRecordsFollowConfig(t *testing.T) {
	data := newData(t)
	conf := filepath.Join(t.TempDir(), "carepost.toml")
	toml := fmt.Sprintf(`data = %q
hostname = "mx.ch-a.test"
domains = ["ch-a.test"]
patient_domain = ""
[listen]
smtp = "192.0.2.1:25"
imaps = "192.0.2.1:993"
imap = ""
submissions = ""
submission = "[2001:db8::1]:587"
https = ""
`, data)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := carepost(t, data, "", "dns", "records", "--config", conf)
	if code != 0 {
		t.Fatalf("dns records: %d %s", code, errs)
	}
	for _, want := range []string{
		"ch-a.test. IN MX 10 mx.ch-a.test.\n",
		"_imaps._tcp.ch-a.test. IN SRV 0 1 993 mx.ch-a.test.\n",
		"_imap._tcp.ch-a.test. IN SRV 0 0 0 .\n",
		"_submissions._tcp.ch-a.test. IN SRV 0 0 0 .\n",
		"_submission._tcp.ch-a.test. IN SRV 10 1 587 mx.ch-a.test.\n",
		"; note: listen.https is off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, no := range []string{"autoconfig.", "autodiscover.", "loopback", "not 993", "not 587", "port 25 only"} {
		if strings.Contains(out, no) {
			t.Errorf("%q in\n%s", no, out)
		}
	}
}
