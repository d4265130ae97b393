package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// dirAPI searches srv's directory as user.
func dirAPI(t *testing.T, srv *servertest.Instance, user, pass, query string) (int, http.Header, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.ClientTLS()}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+srv.AddrOf("https")+server.DirectoryPath+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, out
}

func dirAPIAddresses(ans map[string]any) []string {
	var out []string
	items, _ := ans["items"].([]any)
	for _, it := range items {
		m := it.(map[string]any)
		a, _ := m["address"].(string)
		out = append(out, a)
	}
	return out
}

// The JSON search of the directory: authenticated like the history,
// national and local listings, paged.
func TestDirectoryEndpoint(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" })
	alice := srv.AddProfessional("alice", password)
	for _, f := range []struct {
		format directory.NationalFormat
		file   string
	}{{directory.FormatPSLibreAcces, "../testdata/ps-libreacces-sample.txt"}, {directory.FormatMSSante, "../testdata/mssante-sample.txt"}} {
		file, err := os.Open(f.file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = srv.Dir.ImportNational(t.Context(), f.format, file, directory.ImportOptions{})
		file.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	code, _, ans := dirAPI(t, srv, alice, password, "?q="+url.QueryEscape("Cardiologue LYON"))
	got := dirAPIAddresses(ans)
	if code != http.StatusOK || strings.Join(got, " ") != "cardiologie@chu-lyon.mssante.fr helene.dupont@chu-lyon.mssante.fr jerome.lefevre@medecin.mssante.fr" {
		t.Fatalf("cardiologue lyon: %d %v", code, ans)
	}
	if ans["has_more"] != false || ans["page"] != 1.0 {
		t.Errorf("page info: %v", ans)
	}
	item := ans["items"].([]any)[1].(map[string]any)
	if item["last_name"] != "DUPONT" || item["specialty_label"] != "Cardiologie et maladies vasculaires" || item["local"] != false {
		t.Errorf("item: %v", item)
	}

	// Pages of one.
	var all []string
	for page := 1; page <= 4; page++ {
		code, _, ans = dirAPI(t, srv, alice, password, "?q=cardiolog+lyon&per_page=1&page="+string(rune('0'+page)))
		if code != http.StatusOK {
			t.Fatalf("page %d: %d %v", page, code, ans)
		}
		all = append(all, dirAPIAddresses(ans)...)
		if more := ans["has_more"] == true; more != (page < 3) {
			t.Errorf("page %d: has_more %v", page, ans["has_more"])
		}
	}
	if len(all) != 3 || all[1] != "helene.dupont@chu-lyon.mssante.fr" {
		t.Errorf("paged: %v", all)
	}

	// A field condition, and a local mailbox among the national ones.
	code, _, ans = dirAPI(t, srv, alice, password, "?mail="+url.QueryEscape(alice))
	if got := dirAPIAddresses(ans); code != http.StatusOK || len(got) != 1 || got[0] != alice ||
		ans["items"].([]any)[0].(map[string]any)["local"] != true {
		t.Errorf("mail=%s: %d %v", alice, code, ans)
	}
	code, _, ans = dirAPI(t, srv, alice, password, "?city=lyon&name=lefevre")
	if got := dirAPIAddresses(ans); code != http.StatusOK || len(got) != 1 || got[0] != "jerome.lefevre@medecin.mssante.fr" {
		t.Errorf("city and name: %d %v", code, ans)
	}

	// Refusals.
	code, h, _ := dirAPI(t, srv, "", "", "?q=lyon")
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no credentials: %d %v", code, h)
	}
	code, h, ans = dirAPI(t, srv, alice, "wrong", "?q=lyon")
	if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" || ans["items"] != nil {
		t.Errorf("wrong password: %d %v", code, ans)
	}
	for _, bad := range []string{"", "?q=lyon&per_page=0", "?q=lyon&per_page=1000", "?q=lyon&page=x"} {
		if code, _, ans := dirAPI(t, srv, alice, password, bad); code != http.StatusBadRequest || ans["error"] == nil {
			t.Errorf("%q: %d %v", bad, code, ans)
		}
	}
}
