package server

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DMPConfig is the [dmp] section: the deposit of the documents attached to
// messages into the patient's shared record (docs/dmp.md).
type DMPConfig struct {
	// Enabled runs the deposit hook: messages to a patient's mailbox or
	// to a deposit address are read for documents after they are
	// stored.
	Enabled bool `toml:"enabled"`
	// DepositAddresses are the operator's deposit addresses, mailboxes of
	// the directory (an applicative mailbox: `carepost dir add-mailbox
	// --kind app --address dmp@DOMAIN`); the metadata of what they
	// receive names the patient.
	DepositAddresses []string `toml:"deposit_addresses"`
	// Connector is where documents go: "vault" (the embedded vault: the
	// patient sees them in the portal, professionals through the API) or
	// "mhd" (an HL7 FHIR MHD server, [dmp.mhd]).
	Connector string `toml:"connector"`
	// Grid is the authorization grid's file (TOML, deploy/dmp-grid.toml);
	// empty: the grid built in, the same as that file.
	Grid string `toml:"grid"`
	// Zip limits of an IHE_XDM.ZIP.
	MaxEntries   int       `toml:"max_entries"`
	MaxEntrySize int64     `toml:"max_entry_size"`
	MaxTotalSize int64     `toml:"max_total_size"`
	MaxRatio     int       `toml:"max_ratio"`
	MHD          MHDConfig `toml:"mhd"`
}

// MHDConfig is [dmp.mhd], the FHIR MHD ITI-65 connector.
type MHDConfig struct {
	// Endpoint is the URL the Provide Document Bundle transaction is
	// POSTed to (https; http only on a loopback address, for tests).
	Endpoint string `toml:"endpoint"`
	// CAFile trusts the server's certificate; ClientCert and ClientKey
	// (PEM files) authenticate Carepost with mutual TLS.
	CAFile     string   `toml:"ca_file"`
	ClientCert string   `toml:"client_cert"`
	ClientKey  string   `toml:"client_key"`
	SourceID   string   `toml:"source_id"` // Carepost's OID as a document source
	Timeout    Duration `toml:"timeout"`
}

func defaultDMP() DMPConfig {
	return DMPConfig{Enabled: true, DepositAddresses: []string{"dmp@carepost.test"}, Connector: "vault",
		MaxEntries: 100, MaxEntrySize: 20 << 20, MaxTotalSize: 50 << 20, MaxRatio: 100,
		MHD: MHDConfig{Timeout: Duration(30 * time.Second)}}
}

func (c *DMPConfig) validate() []error {
	var errs []error
	for i, a := range c.DepositAddresses {
		a = strings.ToLower(strings.TrimSpace(a))
		if at := strings.LastIndexByte(a, '@'); at <= 0 || at == len(a)-1 {
			errs = append(errs, fmt.Errorf("dmp.deposit_addresses: %q is not an address", c.DepositAddresses[i]))
		}
		c.DepositAddresses[i] = a
	}
	switch c.Connector {
	case "vault":
	case "mhd":
		u, err := url.Parse(c.MHD.Endpoint)
		switch {
		case c.MHD.Endpoint == "" || err != nil || u.Host == "":
			errs = append(errs, fmt.Errorf("dmp.mhd.endpoint: %q is not a URL (the connector \"mhd\" needs one)", c.MHD.Endpoint))
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopback(u.Host):
		default:
			errs = append(errs, fmt.Errorf("dmp.mhd.endpoint: %q must be an https URL (http only on a loopback HOST:PORT, for tests)", c.MHD.Endpoint))
		}
		if (c.MHD.ClientCert == "") != (c.MHD.ClientKey == "") {
			errs = append(errs, fmt.Errorf("dmp.mhd: set both client_cert and client_key, or neither"))
		}
	default:
		errs = append(errs, fmt.Errorf("dmp.connector: %q is not vault or mhd", c.Connector))
	}
	if c.MaxEntries < 3 || c.MaxEntries > 10000 {
		errs = append(errs, fmt.Errorf("dmp.max_entries: %d is not between 3 and 10000", c.MaxEntries))
	}
	if c.MaxEntrySize < 1<<10 || c.MaxTotalSize < c.MaxEntrySize || c.MaxTotalSize > 1<<30 {
		errs = append(errs, fmt.Errorf("dmp.max_entry_size (%d) and max_total_size (%d): 1 KiB ≤ entry ≤ total ≤ 1 GiB", c.MaxEntrySize, c.MaxTotalSize))
	}
	if c.MaxRatio < 2 || c.MaxRatio > 10000 {
		errs = append(errs, fmt.Errorf("dmp.max_ratio: %d is not between 2 and 10000", c.MaxRatio))
	}
	if d := time.Duration(c.MHD.Timeout); d < time.Second || d > 10*time.Minute {
		errs = append(errs, fmt.Errorf("dmp.mhd.timeout: %v is not between 1s and 10m", d))
	}
	return errs
}
