package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

// rootCommand is the whole command tree.
func rootCommand() *command {
	return &command{subs: []*command{
		serveCommand, initCommand, versionCommand,
		dirCommand(), userCommand(), trustCommand(), pkiCommand(), queueCommand(), auditCommand(), traceCommand, benchCommand(),
		dnsCommand(),  // dns.go
		oidcCommand(), // oidc.go
		dmpWithVault(dmpCommand()),
	}}
}

// withServer runs f over the existing data directory, which the runner
// closes (runLeaf, after the audit event of a change).
func withServer(f func(e *env, srv *server.Server, pos []string) error) runner {
	return func(e *env, pos []string) error {
		srv, err := e.open()
		if err != nil {
			return err
		}
		return f(e, srv, pos)
	}
}

func dirCommand() *command {
	return &command{name: "dir", summary: "the directory: professionals, patients, shared mailboxes and their members",
		subs: []*command{
			{name: "add-professional", summary: "add a health professional's personal mailbox (kind PER)",
				args:     "--id ID --first NAME --last NAME --profession CODE --address ADDRESS",
				required: []string{"id", "first", "last", "profession", "address"},
				long: `The national identifier is 8 + RPPS (11 digits, Luhn key checked) or
0 + ADELI (9 digits: the format only, since no public source states the
ADELI key reliably); a bare RPPS or ADELI is accepted. A second mailbox for
a national identifier already in the directory is refused unless
--allow-duplicate-id is given with --reason, which is kept with the entry.`,
				setup: func(fs *flag.FlagSet) runner {
					var in directory.ProfessionalInput
					fs.StringVar(&in.NationalID, "id", "", "national identifier `ID`: 8+RPPS or 0+ADELI")
					fs.StringVar(&in.FirstName, "first", "", "first `NAME`")
					fs.StringVar(&in.LastName, "last", "", "last `NAME`")
					fs.StringVar(&in.Profession, "profession", "", "profession `CODE` (TRE_G15: 10 doctor, 21 pharmacist, 60 nurse…)")
					fs.StringVar(&in.Specialty, "specialty", "", "specialty `CODE` (TRE_R38, e.g. SM54); none by default")
					fs.StringVar(&in.Address, "address", "", "mailbox `ADDRESS` LOCAL@DOMAIN, in a domain of this server")
					fs.StringVar(&in.Organisation, "organisation", "", "structure `ID` where the professional practises (FINESS, SIRET…); none by default")
					fs.BoolVar(&in.ListeRouge, "liste-rouge", false, "leave the entry out of directory searches")
					fs.BoolVar(&in.AllowDuplicateID, "allow-duplicate-id", false, "accept a national identifier that already has a mailbox (needs --reason)")
					fs.StringVar(&in.DuplicateReason, "reason", "", "why the national identifier gets another mailbox (`TEXT`, kept with the entry)")
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						ent, err := srv.AddProfessional(e.ctx, in)
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "added professional %s %s <%s> (national id %s)\n", ent.FirstName, ent.LastName, ent.Address, ent.NationalID)
						return nil
					})
				}},
			{name: "add-patient", summary: "add a patient mailbox <INS>@patient_domain",
				args:     "--ins INS --first NAME --last NAME",
				required: []string{"ins", "first", "last"},
				setup: func(fs *flag.FlagSet) runner {
					var in directory.PatientInput
					fs.StringVar(&in.INS, "ins", "", "matricule `INS`: the 13-character NIR and its 2-digit key")
					fs.StringVar(&in.FirstName, "first", "", "first `NAME`")
					fs.StringVar(&in.LastName, "last", "", "last `NAME`")
					fs.StringVar(&in.Notify, "notify", "", "e-mail `ADDRESS` told of new messages; none by default")
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						ent, err := srv.AddPatient(e.ctx, in)
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "added patient <%s>\n", ent.Address)
						return nil
					})
				}},
			{name: "add-mailbox", summary: "add an organisational (org), applicative (app) or practice (cab) mailbox",
				args:     "--kind org|app|cab --address ADDRESS",
				required: []string{"kind", "address"},
				long: `An applicative mailbox (app) is the mailbox of a piece of software: with
--cert, the software logs in over mutual TLS with that certificate (on
submission without AUTH, or with SASL EXTERNAL), and may then send as the
mailboxes of its --organisation and as the professionals that organisation
lists (members of its shared mailboxes); anything else is refused.`,
				setup: func(fs *flag.FlagSet) runner {
					var kind, address, description, org, certFile string
					var members stringList
					fs.StringVar(&kind, "kind", "", "`KIND` of shared mailbox: org, app or cab")
					fs.StringVar(&address, "address", "", "mailbox `ADDRESS`, in a domain of this server")
					fs.Var(&members, "member", "`ADDRESS` of a member, who must exist (repeat, or separate with commas); none by default")
					fs.StringVar(&description, "description", "", "what the mailbox is for (`TEXT`)")
					fs.StringVar(&org, "organisation", "", "structure `ID` the mailbox belongs to (FINESS, SIRET…); none by default")
					fs.StringVar(&certFile, "cert", "", "PEM `FILE` of the TLS client certificate the software logs in with (its first certificate)")
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						k, err := directory.ParseKind(kind)
						if err != nil {
							return err
						}
						var cert *x509.Certificate
						if certFile != "" {
							if cert, err = readCertFile(certFile); err != nil {
								return err
							}
							if err := srv.Dir.ValidateClientCert(strings.ToLower(address), k, cert); err != nil {
								return err
							}
						}
						ent, err := srv.AddSharedMailbox(e.ctx, directory.MailboxInput{Kind: k, Address: address, Members: members,
							Description: description, Organisation: org})
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "added %s mailbox <%s> with %d member(s)\n", ent.Kind, ent.Address, len(ent.Members))
						if cert != nil {
							c, err := srv.Dir.RegisterClientCert(e.ctx, ent.Address, cert)
							if err != nil {
								return fmt.Errorf("the mailbox was added, its certificate was not: %w", err)
							}
							fmt.Fprintf(e.stdout, "certificate %q (SHA-256 %s) logs in as <%s>\n", c.Subject, c.Fingerprint, ent.Address)
						}
						return nil
					})
				}},
			{name: "add-member", summary: "make ADDRESS a member (or a manager) of the shared mailbox ORG, or change its role",
				args: "ORG ADDRESS", minArgs: 2, maxArgs: 2,
				setup: func(fs *flag.FlagSet) runner {
					var role string
					fs.StringVar(&role, "role", "member", "`ROLE`: member (read, flag, insert) or manager (also expunge, create, rename and delete folders)")
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						r, err := directory.ParseRole(role)
						if err != nil {
							return err
						}
						if err := srv.Dir.AddMember(e.ctx, pos[0], pos[1], r); err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "%s is now %s of %s\n", strings.ToLower(pos[1]), roleWithArticle(r), strings.ToLower(pos[0]))
						return nil
					})
				}},
			{name: "remove-member", summary: "take ADDRESS out of the shared mailbox ORG",
				args: "ORG ADDRESS", minArgs: 2, maxArgs: 2,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						if err := srv.Dir.RemoveMember(e.ctx, pos[0], pos[1]); err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "%s is no longer a member of %s\n", strings.ToLower(pos[1]), strings.ToLower(pos[0]))
						return nil
					})
				}},
			{name: "members", summary: "list the members of the shared mailbox ORG and their roles",
				args: "ORG", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					asJSON := jsonFlag(fs)
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						ms, err := srv.Dir.Members(e.ctx, pos[0])
						if err != nil {
							return err
						}
						return printMembers(e.stdout, strings.ToLower(pos[0]), ms, *asJSON)
					})
				}},
			{name: "show", summary: "show the directory entry of ADDRESS",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					asJSON := jsonFlag(fs)
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						ent, err := srv.Dir.Lookup(e.ctx, pos[0])
						if err != nil {
							return err
						}
						certs, err := srv.Dir.ClientCerts(e.ctx, ent.Address)
						if err != nil {
							return err
						}
						if *asJSON {
							j := entryJSONOf(ent)
							for _, c := range certs {
								j.ClientCerts = append(j.ClientCerts, clientCertJSON{c.Fingerprint, c.Subject, jsonTime(c.NotAfter)})
							}
							return writeJSON(e.stdout, j)
						}
						if err := printEntry(e.stdout, ent); err != nil {
							return err
						}
						for _, c := range certs {
							fmt.Fprintf(e.stdout, "client certificate  %s, SHA-256 %s, until %s\n", c.Subject, c.Fingerprint, c.NotAfter.UTC().Format(time.DateOnly))
						}
						return nil
					})
				}},
			{name: "search", summary: "find entries whose address, names, identifiers, profession or organisation contain every word of QUERY",
				args: "QUERY…", minArgs: 1, maxArgs: -1,
				long: `This is the operator's search: it includes the entries on the liste rouge
and the patients (--kind patient), which the searches of users and other
operators never show. It also searches the national directory imported
with dir import (column WHERE: here or national): names, identifiers,
professions and specialties ("cardiologue" finds "Cardiologie…"), cities
and organisations, accents and case folded.`,
				setup: func(fs *flag.FlagSet) runner {
					return listRunner(fs, true)
				}},
			{name: "list", summary: "list the entries of the directory, filtered by kind, status and domain",
				setup: func(fs *flag.FlagSet) runner {
					return listRunner(fs, false)
				}},
			dirImportCommand(), // dirimport.go
			{name: "suspend", summary: "suspend a mailbox: no login, no delivery; its open sessions end within seconds",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner { return statusRunner(directory.StatusSuspended) }},
			{name: "activate", summary: "make a suspended or closed mailbox active again",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner { return statusRunner(directory.StatusActive) }},
			{name: "resume", summary: "make a suspended mailbox active again (one suspended for inactivity, for example); a closed one stays closed",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				long: `An account without a login for [auth] suspend_inactive_after is suspended
by the server (docs/auth.md); resume reopens it, and its owner's next login
restarts the inactivity period. A closed mailbox is not resumed: use
dir activate if reopening it is intended.`,
				setup: func(fs *flag.FlagSet) runner { return resumeRunner() }},
		}}
}

func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON instead of a table")
}

func statusRunner(st directory.Status) runner {
	return withServer(func(e *env, srv *server.Server, pos []string) error {
		if err := srv.Dir.SetStatus(e.ctx, pos[0], st); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is now %s\n", strings.ToLower(pos[0]), st)
		return nil
	})
}

// resumeRunner is dir resume: suspended → active, and nothing else.
func resumeRunner() runner {
	return withServer(func(e *env, srv *server.Server, pos []string) error {
		en, err := srv.Dir.Lookup(e.ctx, pos[0])
		if err != nil {
			return err
		}
		switch en.Status {
		case directory.StatusActive:
			fmt.Fprintf(e.stdout, "%s is active already\n", en.Address)
			return nil
		case directory.StatusSuspended:
		default:
			return fmt.Errorf("%s is %s, not suspended: dir resume reopens only a suspended mailbox (dir activate reopens a closed one)", en.Address, en.Status)
		}
		if err := srv.Dir.SetStatus(e.ctx, en.Address, directory.StatusActive); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is now %s\n", en.Address, directory.StatusActive)
		return nil
	})
}

// listRunner is dir list and dir search: the operator's view, filtered.
func listRunner(fs *flag.FlagSet, query bool) runner {
	var kind, status, domain string
	fs.StringVar(&kind, "kind", "", "only this `KIND`: per, org, app, cab or patient; all by default")
	fs.StringVar(&status, "status", "", "only this `STATUS`: active, suspended or closed; all by default")
	fs.StringVar(&domain, "domain", "", "only the addresses of this `DOMAIN`; all by default")
	limit := fs.Int("limit", directory.DefaultListLimit, "at most `N` entries")
	asJSON := jsonFlag(fs)
	return withServer(func(e *env, srv *server.Server, pos []string) error {
		f := directory.ListFilter{Domain: domain, IncludeListeRouge: true, Limit: *limit}
		var err error
		if kind != "" {
			if f.Kind, err = directory.ParseKind(kind); err != nil {
				return err
			}
		}
		if status != "" {
			if f.Status, err = directory.ParseStatus(status); err != nil {
				return err
			}
		}
		if query {
			f.Query = strings.Join(pos, " ")
		}
		es, err := srv.Dir.List(e.ctx, f)
		if err != nil {
			return err
		}
		var ls []directory.Listing // dirimport.go
		if query {
			if ls, err = nationalSearch(e, srv, f); err != nil {
				return err
			}
		}
		if *asJSON {
			out := make([]entryJSON, 0, len(es))
			for _, ent := range es {
				out = append(out, entryJSONOf(ent))
			}
			for _, l := range ls {
				out = append(out, listingJSONOf(l))
			}
			return writeJSON(e.stdout, out)
		}
		if query {
			return printSearch(e.stdout, es, ls)
		}
		return printEntries(e.stdout, es)
	})
}

func roleWithArticle(r directory.Role) string {
	if r == directory.RoleManager {
		return "a manager"
	}
	return "a member"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printMembers lists the members of a shared mailbox, one a line with its
// role, or as JSON.
func printMembers(w io.Writer, mailbox string, ms []directory.Member, asJSON bool) error {
	if asJSON {
		type member struct {
			Address string `json:"address"`
			Role    string `json:"role"`
		}
		out := make([]member, 0, len(ms))
		for _, m := range ms {
			out = append(out, member{m.Address, string(m.Role)})
		}
		return writeJSON(w, out)
	}
	if len(ms) == 0 {
		fmt.Fprintf(w, "%s has no members\n", mailbox)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\n", m.Address, m.Role)
	}
	return tw.Flush()
}

// entryJSON is an entry as `dir show --json` and `dir list --json` print
// it: absent fields and times left out, labels beside codes.
type entryJSON struct {
	Address           string   `json:"address"`
	Kind              string   `json:"kind"`
	Status            string   `json:"status"`
	NationalID        string   `json:"national_id,omitempty"`
	Profession        string   `json:"profession,omitempty"`
	ProfessionLabel   string   `json:"profession_label,omitempty"`
	Specialty         string   `json:"specialty,omitempty"`
	SpecialtyLabel    string   `json:"specialty_label,omitempty"`
	FirstName         string   `json:"first_name,omitempty"`
	LastName          string   `json:"last_name,omitempty"`
	Organisation      string   `json:"organisation,omitempty"`
	Description       string   `json:"description,omitempty"`
	Members           []string `json:"members,omitempty"`
	ListeRouge        bool     `json:"liste_rouge,omitempty"`
	Notify            string   `json:"notify,omitempty"`
	DuplicateIDReason string   `json:"duplicate_id_reason,omitempty"`
	Created           string   `json:"created,omitempty"`
	LastLogin         string   `json:"last_login,omitempty"`
	// City and Where are those of a national listing (dir search).
	City  string `json:"city,omitempty"`
	Where string `json:"where,omitempty"`
	// ClientCerts are the TLS client certificates registered for the
	// mailbox (dir show only).
	ClientCerts []clientCertJSON `json:"client_certificates,omitempty"`
}

type clientCertJSON struct {
	Fingerprint string `json:"sha256"`
	Subject     string `json:"subject"`
	NotAfter    string `json:"not_after"`
}

func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func entryJSONOf(e directory.Entry) entryJSON {
	return entryJSON{Address: e.Address, Kind: string(e.Kind), Status: string(e.Status),
		NationalID: e.NationalID, Profession: e.Profession, ProfessionLabel: directory.Professions[e.Profession],
		Specialty: e.Specialty, SpecialtyLabel: directory.Specialties[e.Specialty],
		FirstName: e.FirstName, LastName: e.LastName, Organisation: e.Organisation, Description: e.Description,
		Members: e.Members, ListeRouge: e.ListeRouge, Notify: e.NotifyAddress, DuplicateIDReason: e.DuplicateIDReason,
		Created: jsonTime(e.CreatedAt), LastLogin: jsonTime(e.LastLogin)}
}

func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04")
}

// printEntry prints one entry, a field a line, the absent ones left out.
func printEntry(w io.Writer, e directory.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	liste := ""
	if e.ListeRouge {
		liste = "yes (left out of searches)"
	}
	for _, kv := range [][2]string{
		{"address", e.Address}, {"kind", string(e.Kind)}, {"status", string(e.Status)},
		{"national id", e.NationalID}, {"duplicate id reason", e.DuplicateIDReason},
		{"profession", directory.ProfessionLabel(e.Profession)}, {"specialty", directory.SpecialtyLabel(e.Specialty)},
		{"first name", e.FirstName}, {"last name", e.LastName}, {"organisation", e.Organisation},
		{"description", e.Description}, {"members", strings.Join(e.Members, ", ")},
		{"liste rouge", liste}, {"notify", e.NotifyAddress},
		{"created", localTime(e.CreatedAt)}, {"last login", localTime(e.LastLogin)},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
	}
	return tw.Flush()
}

// printEntries prints entries as a table.
func printEntries(w io.Writer, es []directory.Entry) error {
	if len(es) == 0 {
		fmt.Fprintln(w, "no entries")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tKIND\tSTATUS\tNAME\tPROFESSION\tSPECIALTY")
	for _, e := range es {
		name := strings.TrimSpace(e.FirstName + " " + e.LastName)
		if name == "" {
			name = e.Description
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, e.Kind, e.Status, name,
			directory.ProfessionLabel(e.Profession), directory.SpecialtyLabel(e.Specialty))
	}
	return tw.Flush()
}

var trustAddDomain = &command{name: "add-domain", summary: "add another operator's DOMAIN to the trust space",
	args: "DOMAIN", minArgs: 1, maxArgs: 1,
	setup: func(fs *flag.FlagSet) runner {
		description := fs.String("description", "", "who operates the domain (`TEXT`)")
		operatorDN := fs.String("operator-dn", "", "subject `DN` of the operator's client certificate (e.g. \"CN=mx.operateur.fr,O=Operateur,C=FR\"); none by default")
		return withServer(func(e *env, srv *server.Server, pos []string) error {
			if err := srv.Dir.AddOperatorDomain(e.ctx, pos[0], *description, *operatorDN); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s is now part of the trust space\n", strings.ToLower(pos[0]))
			return nil
		})
	}}

func trustCommand() *command {
	return &command{name: "trust", summary: "the trust space: the domains of the secure health messaging space and their operators' CAs",
		subs: []*command{
			trustAddDomain,
			{name: "remove-domain", summary: "remove DOMAIN from the trust space",
				args: "DOMAIN", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						if err := srv.Dir.RemoveTrustedDomain(e.ctx, pos[0]); err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "%s is no longer part of the trust space\n", strings.ToLower(pos[0]))
						return nil
					})
				}},
			{name: "import", summary: "replace the trust space with a white list: the national XML or one domain a line",
				args: "FILE|URL", minArgs: 1, maxArgs: 1,
				long: `FILE is the national white list (XML: Domaine entries with Nom,
Description and DNCertificatOperateur) or a plain list, one domain a line,
"#" starting a comment. URL is fetched over https only. The whole trust
space is replaced in one transaction: the domains the list does not name
are removed. Entries that are not valid are skipped and listed; a list
without any valid domain changes nothing.`,
				setup: func(fs *flag.FlagSet) runner {
					caFile := fs.String("ca", "", "PEM `FILE` of CA certificates trusted for an https URL, beside the system's (default: trust.refresh_ca of the configuration)")
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						ca := *caFile
						if ca == "" {
							ca = srv.Config.Trust.RefreshCA
						}
						rep, err := srv.ImportTrustList(e.ctx, pos[0], ca)
						if err != nil {
							return err
						}
						for _, d := range rep.Added {
							fmt.Fprintf(e.stdout, "added    %s\n", d)
						}
						for _, d := range rep.Changed {
							fmt.Fprintf(e.stdout, "changed  %s\n", d)
						}
						for _, d := range rep.Removed {
							fmt.Fprintf(e.stdout, "removed  %s\n", d)
						}
						for _, s := range rep.Skipped {
							fmt.Fprintf(e.stdout, "skipped  %s\n", s)
						}
						fmt.Fprintf(e.stdout, "the trust space has %d domain(s): %d added, %d changed, %d removed, %d entries skipped\n",
							rep.Total, len(rep.Added), len(rep.Changed), len(rep.Removed), len(rep.Skipped))
						return nil
					})
				}},
			{name: "add-ca", summary: "store an operator's CA certificate (PEM) as a trust anchor of server-to-server TLS",
				args: "FILE", minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						b, err := os.ReadFile(pos[0])
						if err != nil {
							return err
						}
						added, err := srv.Dir.AddTrustAnchor(e.ctx, b)
						if err != nil {
							return err
						}
						for _, a := range added {
							fmt.Fprintf(e.stdout, "trust anchor %s (SHA-256 %s)\n", a.Subject, a.Fingerprint)
						}
						return nil
					})
				}},
			{name: "list", summary: "list the domains hosted here, those of the trust space and the trust anchors",
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, _ []string) error {
						ds, err := srv.Store.TrustedDomains(e.ctx)
						if err != nil {
							return err
						}
						info, err := srv.Dir.TrustListInfo(e.ctx)
						if err != nil {
							return err
						}
						anchors, err := srv.Dir.StoredTrustAnchors(e.ctx)
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
						fmt.Fprintln(tw, "DOMAIN\tDESCRIPTION\tOPERATOR CERTIFICATE DN")
						for _, d := range srv.Config.Domains {
							fmt.Fprintf(tw, "%s\t(hosted here)\t\n", d)
						}
						for _, d := range ds {
							fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Domain, d.Description, d.OperatorCertDN)
						}
						if err := tw.Flush(); err != nil {
							return err
						}
						if !info.ImportedAt.IsZero() {
							fmt.Fprintf(e.stdout, "\nlist imported %s from %s", localTime(info.ImportedAt), info.Source)
							if !info.Generated.IsZero() {
								fmt.Fprintf(e.stdout, " (generated %s)", localTime(info.Generated))
							}
							fmt.Fprintln(e.stdout)
						}
						fmt.Fprintln(e.stdout, "\ntrust anchors:")
						if srv.Config.TLS.Cert == "" {
							fmt.Fprintf(e.stdout, "  %s (the development CA, %s)\n", srv.PKI.CACert().Subject, srv.PKI.CAPath())
						}
						for _, a := range anchors {
							fmt.Fprintf(e.stdout, "  %s (SHA-256 %s)\n", a.Subject, a.Fingerprint)
						}
						return nil
					})
				}},
		}}
}

// readCertFile reads the first certificate of a PEM file.
func readCertFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return c, nil
		}
	}
}
