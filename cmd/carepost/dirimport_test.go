package main

import (
	"strings"
	"testing"
)

// A new user's walk: import the sample national files, then search
// "cardiologue lyon" (issue #27).
func TestDirImportAndSearch(t *testing.T) {
	data := newData(t)
	out, errs, code := carepost(t, data, "", "dir", "import", "--format", "ps-libreacces", "--progress", "../../testdata/ps-libreacces-sample.txt")
	if code != 0 || !strings.Contains(out, "36 lines, 31 professionals") || !strings.Contains(out, "added 31, changed 0, closed 0") ||
		!strings.Contains(out, "2 malformed lines skipped") || !strings.Contains(out, "line 16: 19 fields instead of 53") ||
		!strings.Contains(errs, "lines read") {
		t.Fatalf("import ps: exit %d\n%s%s", code, out, errs)
	}
	// The professionals, before any address is known.
	out, errs, code = carepost(t, data, "", "dir", "search", "cardiologue", "lyon")
	if code != 0 || !strings.Contains(out, "Hélène DUPONT") || !strings.Contains(out, "Jérôme LEFÈVRE") ||
		!strings.Contains(out, "SM04 (Cardiologie et maladies vasculaires)") || !strings.Contains(out, "national") ||
		strings.Contains(out, "Anaïs NGUYEN") {
		t.Fatalf("search after ps: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = carepost(t, data, "", "dir", "import", "--format", "mssante", "../../testdata/mssante-sample.txt")
	if code != 0 || !strings.Contains(out, "addresses") || !strings.Contains(out, `unknown mailbox type "XYZ"`) {
		t.Fatalf("import mssante: exit %d\n%s%s", code, out, errs)
	}
	// A local mailbox beside the national ones.
	if out, errs, code := carepost(t, data, "", "dir", "add-professional", "--id", "810001045367", "--first", "Jean", "--last", "Dupont",
		"--profession", "10", "--address", "jean.dupont@carepost.test"); code != 0 {
		t.Fatalf("add-professional: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = carepost(t, data, "", "dir", "search", "CARDIOLOGUE", "Lyon")
	for _, want := range []string{"cardiologie@chu-lyon.mssante.fr", "helene.dupont@chu-lyon.mssante.fr", "jerome.lefevre@medecin.mssante.fr", "WHERE"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("search after mssante: %s missing, exit %d\n%s%s", want, code, out, errs)
		}
	}
	out, _, _ = carepost(t, data, "", "dir", "search", "dupont")
	if !strings.Contains(out, "jean.dupont@carepost.test") || !strings.Contains(out, "here") || !strings.Contains(out, "helene.dupont@") {
		t.Errorf("search dupont, here and national:\n%s", out)
	}
	out, _, _ = carepost(t, data, "", "dir", "search", "--json", "helene")
	if !strings.Contains(out, `"where": "national"`) || !strings.Contains(out, `"city": "BRON"`) {
		t.Errorf("search --json:\n%s", out)
	}
	// The import is an administrative event.
	out, _, _ = carepost(t, data, "", "audit", "show")
	if !strings.Contains(out, "admin.dir.import") {
		t.Errorf("no admin.dir.import event:\n%s", out)
	}
}

func TestDirImportRefusals(t *testing.T) {
	data := newData(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dir", "import", "../../testdata/mssante-sample.txt"}, "--format is required"},
		{[]string{"dir", "import", "--format", "csv", "../../testdata/mssante-sample.txt"}, "Unknown format"},
		{[]string{"dir", "import", "--format", "ps-libreacces", "../../testdata/mssante-sample.txt"}, "are missing"},
		{[]string{"dir", "import", "--format", "mssante", "/nonexistent/file.txt"}, "no such file"},
	} {
		out, errs, code := carepost(t, data, "", c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want %q\n%s%s", c.args, code, c.want, out, errs)
		}
	}
}
