package dmp

// The HL7 FHIR MHD connector: IHE ITI-65 "Provide Document Bundle"
// (docs/dmp.md "Connectors", docs/domain.md §5).
//
// Implementation notes:
//   - One FHIR R4 transaction Bundle per submission: a List (the
//     submission set), then for each document its DocumentReference and its
//     Binary, in that order. FHIR R4 §3.1.0.11.3 (http.html#transaction)
//     answers a transaction with a transaction-response Bundle whose
//     entries are in the order of the request's, so entry i of the reply
//     is read against entry i of the request.
//   - A transaction is atomic: the server takes all or nothing. A refusal
//     (4xx with an OperationOutcome) therefore refuses every document; an
//     issue whose expression or location names one entry
//     ("Bundle.entry[3]…") is that document's reason, the others get the
//     issues that name no entry.
//   - Idempotence: the hook may deposit the same submission twice. A
//     server answers the second Bundle with a "duplicate" issue (FHIR
//     IssueType duplicate, or the XDS error XDSDuplicateUniqueIdInRegistry
//     in the details). When every error of the reply is such a
//     duplicate, the documents it names (all of them when it names none)
//     are already there, hence deposited; the others, if any, are sent
//     again in a new Bundle without them, once.
//   - Only what the server cannot be blamed on the sender is an error
//     (retried later): 5xx, 408, 429, 401/403 (our credentials), a network
//     failure, a reply that is not FHIR. Anything else 4xx is a refusal of
//     the documents (Code MHDRefused).
//   - The JSON is written by hand with the few R4 fields used (no FHIR
//     library): the structs below.

import (
	"bytes"
	"context" // #nosec: the XDS/FHIR document hash is SHA-1 (FHIR R4 Attachment.hash)
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/carepost/carepost/limit"
)

// Profiles and systems of the Bundle (IHE MHD 4.2, canonical URLs of
// https://profiles.ihe.net/ITI/MHD/; the national ones from docs/domain.md §2).
const (
	MHDProvideBundleProfile  = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle"
	mhdSubmissionSetProfile  = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet"
	mhdDocumentRefProfile    = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"
	mhdSourceIDExtension     = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
	mhdListTypes             = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
	fhirURISystem            = "urn:ietf:rfc:3986"
	fhirLOINC                = "http://loinc.org"
	fhirV3Confidentiality    = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	fhirIHEFormatCode        = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
	loincOID                 = "2.16.840.1.113883.6.1"
	v3ConfidentialityOID     = "2.16.840.1.113883.5.25"
	iheFormatCodeOID         = "1.3.6.1.4.1.19376.1.2.3"
	insNIROID                = "1.2.250.1.213.1.4.8"
	professionalIDOID        = "1.2.250.1.71.4.2.1"
	structureIDOID           = "1.2.250.1.71.4.2.2"
	fhirJSON                 = "application/fhir+json"
	mhdDefaultTimeout        = 30 * time.Second
	mhdMaxResponse           = 1 << 20
	xdsDuplicateUniqueID     = "XDSDuplicateUniqueIdInRegistry"
	xdsNonIdenticalHash      = "XDSNonIdenticalHash"
	mhdReasonLimit           = 300
	mhdPlainAttachmentPrefix = "2.25."
)

// MHDRefused is the Outcome Code of a document the MHD server refused.
const MHDRefused = "MHD_REFUSED"

// MHDConfig configures the FHIR MHD connector (docs/dmp.md "Connectors").
type MHDConfig struct {
	// Endpoint is the FHIR base URL the transaction Bundle is POSTed to
	// (ITI-65 is a FHIR transaction: POST [base]). It must be https;
	// http is accepted only on a loopback address, for tests.
	Endpoint string
	// CAFile is a PEM file of the authorities trusted for the
	// endpoint's certificate; empty: the system's.
	CAFile string
	// ClientCert and ClientKey are PEM files of the certificate Carepost
	// presents (mutual TLS, e.g. an IGC-Santé ORG AUTH_CLI certificate);
	// both or neither.
	ClientCert, ClientKey string
	// BearerToken, when set, is sent as "Authorization: Bearer …". It
	// is never logged.
	BearerToken string
	// SourceID is the OID of Carepost as a document source, for the
	// submission sets that carry none (plain attachments); also the
	// default of every submission set's sourceId.
	SourceID string
	// Timeout bounds one HTTP exchange; 30 s when zero.
	Timeout time.Duration
	// Logger receives one line per deposit; discarded when nil.
	Logger *slog.Logger
}

// MHDConnector deposits submissions into a FHIR MHD Document Recipient
// (ITI-65). It is safe for concurrent use.
type MHDConnector struct {
	endpoint string
	token    string
	sourceID string
	client   *http.Client
	log      *slog.Logger
}

// NewMHD checks cfg and returns the connector. It does not contact the
// endpoint.
func NewMHD(cfg MHDConfig) (*MHDConnector, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("dmp: mhd: endpoint %q is not an absolute URL: give the FHIR base URL, e.g. https://dmp.example/fhir", cfg.Endpoint)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !limit.IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("dmp: mhd: endpoint %q is not https: health documents go only over TLS (http is for loopback tests)", cfg.Endpoint)
		}
	default:
		return nil, fmt.Errorf("dmp: mhd: endpoint %q: the scheme must be https", cfg.Endpoint)
	}
	if u.User != nil {
		return nil, fmt.Errorf("dmp: mhd: endpoint must not carry credentials in the URL: use bearer_token or a client certificate")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("dmp: mhd: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dmp: mhd: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	if (cfg.ClientCert == "") != (cfg.ClientKey == "") {
		return nil, errors.New("dmp: mhd: client_cert and client_key go together: give both or neither")
	}
	if cfg.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCert, cfg.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("dmp: mhd: cannot load the client certificate %s with key %s: %w", cfg.ClientCert, cfg.ClientKey, err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	if cfg.SourceID != "" && !isOID(cfg.SourceID) {
		return nil, fmt.Errorf("dmp: mhd: source_id %q is not an OID", cfg.SourceID)
	}
	if strings.ContainsAny(cfg.BearerToken, "\r\n") {
		return nil, errors.New("dmp: mhd: bearer_token must be one line")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = mhdDefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: timeout,
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &MHDConnector{
		endpoint: strings.TrimRight(u.String(), "/"),
		token:    cfg.BearerToken,
		sourceID: cfg.SourceID,
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// A transaction is answered, not redirected: following a
			// redirect would resend health data to another address.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log,
	}, nil
}

// Name implements Connector.
func (c *MHDConnector) Name() string { return "mhd" }

// Close releases idle connections.
func (c *MHDConnector) Close() { c.client.CloseIdleConnections() }

// Deposit implements Connector: one ITI-65 transaction for the submission.
func (c *MHDConnector) Deposit(ctx context.Context, sub *Submission, by Depositor) ([]Outcome, error) {
	if sub == nil || len(sub.Documents) == 0 {
		return nil, nil
	}
	outcomes := make([]Outcome, len(sub.Documents))
	for i, d := range sub.Documents {
		outcomes[i] = Outcome{UniqueID: documentUniqueID(sub, i), Title: d.Title}
	}
	// ReadXDM and Validate checked these already; a document that still
	// fails them is refused here rather than sent, or retried for ever.
	var pending []int
	for i := range sub.Documents {
		if code, reason := mhdPrecheck(sub, i); code != "" {
			outcomes[i].Code, outcomes[i].Reason = code, reason
			continue
		}
		pending = append(pending, i)
	}
	// At most two rounds: the second only resends the documents a
	// duplicate-only refusal did not name (Implementation notes).
	for round := 0; round < 2 && len(pending) > 0; round++ {
		body, plan, err := c.buildBundle(sub, by, pending)
		if err != nil {
			return nil, err
		}
		status, reply, err := c.post(ctx, body)
		if err != nil {
			return nil, err
		}
		res, err := parseMHDResponse(status, reply, plan)
		if err != nil {
			c.log.Warn("dmp: mhd deposit failed", "status", status, "documents", len(pending), "err", err)
			return nil, err
		}
		var again []int
		for k, r := range res {
			i := pending[k]
			switch {
			case r.deposited:
				outcomes[i].Deposited, outcomes[i].Ref = true, r.ref
			case r.duplicate:
				outcomes[i].Deposited = true // already there (idempotence)
			case r.retry && round == 0:
				again = append(again, i)
			case r.retry:
				outcomes[i].Code, outcomes[i].Reason = MHDRefused, "The record refused the document twice because other documents sent with it were already deposited."
			default:
				outcomes[i].Code, outcomes[i].Reason = MHDRefused, r.reason
			}
		}
		c.log.Info("dmp: mhd deposit", "status", status, "documents", len(pending), "resend", len(again))
		pending = again
	}
	return outcomes, nil
}

func (c *MHDConnector) post(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("dmp: mhd: %w", err)
	}
	req.Header.Set("Content-Type", fhirJSON+"; charset=utf-8")
	req.Header.Set("Accept", fhirJSON)
	// FHIR R4 http.html#ops: return=representation is not needed, the
	// locations of the transaction-response are enough.
	req.Header.Set("Prefer", "return=minimal")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("dmp: mhd: the record's endpoint did not answer: %w", err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, mhdMaxResponse+1))
	if err != nil {
		return 0, nil, fmt.Errorf("dmp: mhd: reading the reply (HTTP %d): %w", resp.StatusCode, err)
	}
	if len(reply) > mhdMaxResponse {
		return 0, nil, fmt.Errorf("dmp: mhd: the reply (HTTP %d) is over %d bytes", resp.StatusCode, mhdMaxResponse)
	}
	return resp.StatusCode, reply, nil
}
