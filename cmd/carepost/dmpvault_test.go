package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

const dmpTestINS = "255081416802538"

// dmpDeposit deposits documents in the vault of data directly, as the
// deposit path does, and returns their IDs.
func dmpDeposit(t *testing.T, data string, docs ...dmp.Document) []string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Data = data
	srv, err := server.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	v, err := srv.DMPVault()
	if err != nil {
		t.Fatal(err)
	}
	out, err := v.Deposit(context.Background(), &dmp.Submission{PatientINS: dmpTestINS, Documents: docs},
		dmp.Depositor{Address: "gp@carepost.test", NationalID: "810001234567", Profession: "10"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range out {
		if !o.Deposited {
			t.Fatalf("deposit: %+v", o)
		}
		ids = append(ids, o.Ref)
	}
	return ids
}

// `carepost dmp list INS` shows the deposited documents, `dmp show` one of
// them and, with --out, writes its content, which is a recorded read;
// `dmp block` and `unblock` change the patient's controls, refusing to
// block the médecin traitant.
func TestDMPCommands(t *testing.T) {
	data := newData(t)
	ids := dmpDeposit(t, data,
		dmp.Document{UniqueID: "1.2.250.1.999.1", TypeCode: dmp.Code{Code: "11502-2"}, Title: "Bilan sanguin", MimeType: "text/plain",
			Authors: []dmp.Author{{PersonID: "810001234567", FirstName: "Jean", LastName: "Dupont"}}, Content: []byte("Glycémie 5,2 mmol/l")},
		dmp.Document{UniqueID: "1.2.250.1.999.2", TypeCode: dmp.Code{Code: "11490-0"}, Title: "Lettre de liaison", MimeType: "application/pdf",
			Visibility: dmp.HiddenFromProfessionals, Content: []byte("%PDF-1.7 sortie")},
	)
	run := func(want int, args ...string) string {
		t.Helper()
		out, errs, code := carepost(t, data, "", args...)
		if code != want {
			t.Fatalf("carepost %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out + errs
	}
	out := run(0, "dmp", "list", dmpTestINS)
	for _, s := range []string{ids[0], ids[1], "11502-2 (Compte rendu d'examens de biologie médicale)", "Bilan sanguin", "Jean Dupont (810001234567)", "MASQUE_PS"} {
		if !strings.Contains(out, s) {
			t.Errorf("dmp list lacks %q:\n%s", s, out)
		}
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(run(0, "dmp", "list", dmpTestINS, "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("dmp list --json: %v %v", list, err)
	}
	if out := run(0, "dmp", "list", "168127512345648"); !strings.Contains(out, "no document") {
		t.Errorf("empty record: %s", out)
	}
	run(2, "dmp", "list", "12345")

	out = run(0, "dmp", "show", ids[0])
	if !strings.Contains(out, "Bilan sanguin") || !strings.Contains(out, dmpTestINS) || strings.Contains(out, "Glycémie") {
		t.Errorf("dmp show:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "bilan.txt")
	run(0, "dmp", "show", ids[0], "--out", file)
	if b, err := os.ReadFile(file); err != nil || string(b) != "Glycémie 5,2 mmol/l" {
		t.Fatalf("--out: %q %v", b, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("--out mode %v", st.Mode())
	}
	if out := run(1, "dmp", "show", ids[0], "--out", file); !strings.Contains(out, "not overwritten") {
		t.Errorf("--out over an existing file: %s", out)
	}
	if out := run(1, "dmp", "show", "0123456789abcdef0123456789abcdef"); !strings.Contains(out, "no document") {
		t.Errorf("unknown document: %s", out)
	}

	run(0, "dmp", "controls", dmpTestINS, "--medecin-traitant", "810009999995")
	if out := run(1, "dmp", "block", dmpTestINS, "810009999995"); !strings.Contains(out, "cannot be blocked") {
		t.Errorf("block the médecin traitant: %s", out)
	}
	if out := run(0, "dmp", "block", dmpTestINS, "10002345675"); !strings.Contains(out, "810002345675 is now blocked") {
		t.Errorf("block: %s", out)
	}
	out = run(0, "dmp", "controls", dmpTestINS)
	if !strings.Contains(out, "810002345675") || !strings.Contains(out, "emergency access: on") || !strings.Contains(out, "810009999995") {
		t.Errorf("controls: %s", out)
	}
	run(0, "dmp", "controls", dmpTestINS, "--emergency", "off")
	run(0, "dmp", "unblock", dmpTestINS, "810002345675")
	out = run(0, "dmp", "controls", dmpTestINS)
	if strings.Contains(out, "810002345675") || !strings.Contains(out, "emergency access: off") {
		t.Errorf("controls after unblock: %s", out)
	}
	run(2, "dmp", "block", dmpTestINS, "12")

	// The trail: the read of the content, the changes of the controls and
	// the commands.
	srv := openStore(t, data)
	evs, err := srv.Audit.AuditEvents(context.Background(), storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		count[e.Action+"/"+e.Outcome]++
		if e.Action == "dmp.read" && (e.Object != ids[0] || e.Details["ins"] != dmpTestINS || e.Details["os_user"] == "") {
			t.Errorf("read event: %+v", e)
		}
	}
	for k, n := range map[string]int{"dmp.read/ok": 1, "dmp.controls/ok": 4, "admin.dmp.block/ok": 1, "admin.dmp.block/failed": 2,
		"admin.dmp.unblock/ok": 1, "admin.dmp.list/ok": 3, "admin.dmp.show/ok": 2, "dmp.deposit/ok": 2} {
		if count[k] != n {
			t.Errorf("%d events %s, want %d (all: %v)", count[k], k, n, count)
		}
	}
}
