package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

func cmdDir(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("dir: missing subcommand (add-professional, add-patient, add-mailbox, add-member, remove-member, members, show, search, suspend, activate)")
	}
	var c commonFlags
	fs := newFlagSet("dir "+args[0], &c)
	var (
		id, first, last, profession, specialty, address, organisation string
		ins, notify, kind, description, role                          string
		members                                                       stringList
		asJSON                                                        bool
	)
	switch args[0] {
	case "add-professional":
		fs.StringVar(&id, "id", "", "national identifier: 8+RPPS or 0+ADELI")
		fs.StringVar(&first, "first", "", "first name")
		fs.StringVar(&last, "last", "", "last name")
		fs.StringVar(&profession, "profession", "", "profession code (TRE_G15: 10 doctor, 21 pharmacist, 60 nurse…)")
		fs.StringVar(&specialty, "specialty", "", "specialty code (TRE_R38, e.g. SM54)")
		fs.StringVar(&address, "address", "", "mailbox address LOCAL@DOMAIN")
		fs.StringVar(&organisation, "organisation", "", "structure identifier (FINESS, SIRET…)")
	case "add-patient":
		fs.StringVar(&ins, "ins", "", "INS: 13-character NIR + 2-digit key")
		fs.StringVar(&first, "first", "", "first name")
		fs.StringVar(&last, "last", "", "last name")
		fs.StringVar(&notify, "notify", "", "address told of new messages")
	case "add-mailbox":
		fs.StringVar(&kind, "kind", "", "org, app or cab")
		fs.StringVar(&address, "address", "", "mailbox address")
		fs.Var(&members, "member", "delegated member address (repeatable)")
		fs.StringVar(&description, "description", "", "description")
	case "add-member":
		fs.StringVar(&role, "role", "member", "member (read, flag, insert) or manager (also expunge, create, rename and delete folders)")
	case "show", "search", "members":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "suspend", "activate", "remove-member":
	default:
		return usageError("dir: unknown subcommand %q", args[0])
	}
	pos, srv, err := parseAndOpen(fs, &c, args[1:])
	if err != nil {
		return err
	}
	defer srv.Close()

	switch args[0] {
	case "add-professional":
		e, err := srv.AddProfessional(ctx, directory.ProfessionalInput{NationalID: id, FirstName: first, LastName: last,
			Profession: profession, Specialty: specialty, Address: address, Organisation: organisation})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added professional %s %s <%s> (national id %s)\n", e.FirstName, e.LastName, e.Address, e.NationalID)
	case "add-patient":
		e, err := srv.AddPatient(ctx, directory.PatientInput{INS: ins, FirstName: first, LastName: last, Notify: notify})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added patient <%s>\n", e.Address)
	case "add-mailbox":
		k := directory.Kind(strings.ToUpper(kind))
		e, err := srv.AddMailbox(ctx, k, address, members, description)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s mailbox <%s> with %d member(s)\n", e.Kind, e.Address, len(e.Members))
	case "add-member":
		if len(pos) != 2 {
			return usageError("dir add-member: give the shared mailbox ORG and the member's ADDRESS")
		}
		r, err := directory.ParseRole(role)
		if err != nil {
			return err
		}
		if err := srv.Dir.AddMember(ctx, pos[0], pos[1], r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s of %s\n", strings.ToLower(pos[1]), roleWithArticle(r), strings.ToLower(pos[0]))
	case "remove-member":
		if len(pos) != 2 {
			return usageError("dir remove-member: give the shared mailbox ORG and the member's ADDRESS")
		}
		if err := srv.Dir.RemoveMember(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is no longer a member of %s\n", strings.ToLower(pos[1]), strings.ToLower(pos[0]))
	case "members":
		if len(pos) != 1 {
			return usageError("dir members: give one shared mailbox ORG")
		}
		ms, err := srv.Dir.Members(ctx, pos[0])
		if err != nil {
			return err
		}
		return printMembers(stdout, strings.ToLower(pos[0]), ms, asJSON)
	case "show":
		if len(pos) != 1 {
			return usageError("dir show: give one ADDRESS")
		}
		e, err := srv.Dir.Lookup(ctx, pos[0])
		if err != nil {
			return err
		}
		return printEntries(stdout, []directory.Entry{e}, asJSON, true)
	case "search":
		if len(pos) != 1 {
			return usageError("dir search: give one QUERY")
		}
		es, err := srv.Dir.Search(ctx, pos[0], 100)
		if err != nil {
			return err
		}
		return printEntries(stdout, es, asJSON, false)
	case "suspend", "activate":
		if len(pos) != 1 {
			return usageError("dir %s: give one ADDRESS", args[0])
		}
		st := directory.StatusSuspended
		if args[0] == "activate" {
			st = directory.StatusActive
		}
		if err := srv.Dir.SetStatus(ctx, pos[0], st); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", strings.ToLower(pos[0]), st)
	}
	return nil
}

func roleWithArticle(r directory.Role) string {
	if r == directory.RoleManager {
		return "a manager"
	}
	return "a member"
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
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
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

func printEntries(w io.Writer, es []directory.Entry, asJSON, long bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if long && len(es) == 1 {
			return enc.Encode(es[0])
		}
		return enc.Encode(es)
	}
	if long {
		e := es[0]
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"address", e.Address}, {"kind", string(e.Kind)}, {"status", string(e.Status)},
			{"national id", e.NationalID}, {"profession", e.Profession}, {"specialty", e.Specialty},
			{"first name", e.FirstName}, {"last name", e.LastName}, {"organisation", e.Organisation},
			{"description", e.Description}, {"members", strings.Join(e.Members, ", ")},
			{"liste rouge", fmt.Sprint(e.ListeRouge)}, {"notify", e.NotifyAddress},
		} {
			if kv[1] != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
			}
		}
		return tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tKIND\tSTATUS\tNAME\tPROFESSION\tSPECIALTY")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, e.Kind, e.Status, strings.TrimSpace(e.FirstName+" "+e.LastName), e.Profession, e.Specialty)
	}
	return tw.Flush()
}

func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("user: missing subcommand (set-password, app-password, app-passwords, revoke-app-password)")
	}
	var c commonFlags
	fs := newFlagSet("user "+args[0], &c)
	var label string
	var asJSON bool
	switch args[0] {
	case "set-password", "revoke-app-password":
	case "app-password":
		fs.StringVar(&label, "label", "", "name of the device or client")
	case "app-passwords":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	default:
		return usageError("user: unknown subcommand %q", args[0])
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if args[0] == "revoke-app-password" {
		if len(pos) != 2 {
			return usageError("user revoke-app-password: give the ADDRESS and the ID or LABEL of the application password (user app-passwords ADDRESS lists them)")
		}
	} else if len(pos) != 1 {
		return usageError("user %s: give one ADDRESS", args[0])
	}
	srv, err := openServer(c, os.Stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	switch args[0] {
	case "set-password":
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := srv.Dir.SetPassword(ctx, pos[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password set for %s\n", strings.ToLower(pos[0]))
	case "app-password":
		pw, err := srv.Dir.NewAppPassword(ctx, pos[0], label)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "application password for %s (shown once; use it in the mail client as the password):\n", strings.ToLower(pos[0]))
		fmt.Fprintln(stdout, pw)
	case "app-passwords":
		aps, err := srv.Dir.AppPasswords(ctx, pos[0])
		if err != nil {
			return err
		}
		return printAppPasswords(stdout, strings.ToLower(pos[0]), aps, asJSON)
	case "revoke-app-password":
		ap, err := srv.Dir.RevokeAppPassword(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "application password %d (%s) of %s revoked; the account's open sessions end within seconds\n",
			ap.ID, ap.Label, strings.ToLower(pos[0]))
	}
	return nil
}

// printAppPasswords lists application passwords (never their hashes), one
// a line, or as JSON.
func printAppPasswords(w io.Writer, address string, aps []directory.AppPassword, asJSON bool) error {
	day := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04")
	}
	if asJSON {
		type appPassword struct {
			ID       int64  `json:"id"`
			Label    string `json:"label"`
			Created  string `json:"created"`
			LastUsed string `json:"last_used,omitempty"`
		}
		out := make([]appPassword, 0, len(aps))
		for _, ap := range aps {
			out = append(out, appPassword{ap.ID, ap.Label, day(ap.CreatedAt), day(ap.LastUsed)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(aps) == 0 {
		fmt.Fprintf(w, "%s has no application passwords\n", address)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tCREATED\tLAST USED")
	for _, ap := range aps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", ap.ID, ap.Label, day(ap.CreatedAt), day(ap.LastUsed))
	}
	return tw.Flush()
}

// readPassword reads one line from standard input, without echo when it is
// a terminal.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password on standard input (e.g. echo 'a long passphrase' | carepost user set-password ADDRESS)")
	}
	return line, nil
}

func cmdTrust(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("trust: missing subcommand (add-domain, list)")
	}
	var c commonFlags
	fs := newFlagSet("trust "+args[0], &c)
	var description string
	switch args[0] {
	case "add-domain":
		fs.StringVar(&description, "description", "", "who operates it")
	case "list":
	default:
		return usageError("trust: unknown subcommand %q", args[0])
	}
	pos, srv, err := parseAndOpen(fs, &c, args[1:])
	if err != nil {
		return err
	}
	defer srv.Close()
	switch args[0] {
	case "add-domain":
		if len(pos) != 1 {
			return usageError("trust add-domain: give one DOMAIN")
		}
		if err := srv.Dir.AddTrustedDomain(ctx, pos[0], description); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now part of the trust space\n", strings.ToLower(pos[0]))
	case "list":
		ds, err := srv.Store.TrustedDomains(ctx)
		if err != nil {
			return err
		}
		for _, d := range srv.Config.Domains {
			fmt.Fprintf(stdout, "%s\t(hosted here)\n", d)
		}
		for _, d := range ds {
			fmt.Fprintf(stdout, "%s\t%s\n", d.Domain, d.Description)
		}
	}
	return nil
}

func cmdPKI(_ context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("pki: missing subcommand (init, issue, export)")
	}
	var c commonFlags
	fs := newFlagSet("pki "+args[0], &c)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, err := server.Load(c.config)
	if err != nil {
		return err
	}
	if c.data != "" {
		cfg.Data = c.data
	}
	pki, err := crypto.OpenPKI(filepath.Join(cfg.Data, "pki"))
	if err != nil {
		return err
	}
	switch args[0] {
	case "init":
		if len(pos) != 0 {
			return usageError("pki init takes no argument")
		}
		if _, err := pki.ServerCertificate(cfg.Hostname); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CA certificate:     %s\nserver certificate: %s (for %s, localhost, 127.0.0.1, ::1)\n",
			pki.CAPath(), filepath.Join(pki.Dir(), "server.crt"), cfg.Hostname)
	case "issue":
		if len(pos) != 1 {
			return usageError("pki issue: give one ADDRESS")
		}
		certPath, keyPath, err := pki.Issue(pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "certificate: %s\nkey:         %s\n", certPath, keyPath)
	case "export":
		if len(pos) != 1 {
			return usageError("pki export: give ca or an ADDRESS")
		}
		b, err := pki.Export(pos[0])
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	default:
		return usageError("pki: unknown subcommand %q", args[0])
	}
	return nil
}

// parseAndOpen parses a subcommand's flags and opens the data directory
// they name.
func parseAndOpen(fs *flag.FlagSet, c *commonFlags, args []string) ([]string, *server.Server, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	srv, err := openServer(*c, os.Stderr)
	return pos, srv, err
}
