package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The example configuration shipped in deploy/ must load and validate: it
// documents every key.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "deploy", "carepost.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	def := Defaults()
	if cfg.Listen != def.Listen || cfg.Hostname != def.Hostname || cfg.PatientDomain != def.PatientDomain ||
		cfg.Queue != def.Queue || cfg.Audit != def.Audit || cfg.DKIM != def.DKIM || len(cfg.Routes) != 0 {
		t.Fatalf("deploy/carepost.toml drifted from the defaults in code:\n%+v\n%+v", cfg, def)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte("hostnme = \"x\"\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "hostnme") {
		t.Fatalf("unknown key not named: %v", err)
	}
	cfg := Defaults()
	cfg.PatientDomain = "patients.example.org"
	cfg.Listen.IMAPS = "9993"
	cfg.Log.Level = "loud"
	cfg.Queue.RetryMax = Duration(1)
	cfg.DKIM.Selector = "a.b"
	cfg.Routes = map[string]string{"b.test": "nowhere"}
	cfg.Audit.Retention = Duration(time.Hour)
	err := cfg.Validate()
	for _, key := range []string{"audit.retention", "patient_domain", "listen.imaps", "log.level", "queue.retry_max", "dkim.selector", "routes"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}
