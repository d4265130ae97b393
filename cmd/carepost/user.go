package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

func userCommand() *command {
	list := &command{name: "list", summary: "list the application passwords of ADDRESS (never the passwords)",
		args: "ADDRESS", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runner {
			asJSON := jsonFlag(fs)
			return withServer(func(e *env, srv *server.Server, pos []string) error {
				aps, err := srv.Dir.AppPasswords(e.ctx, pos[0])
				if err != nil {
					return err
				}
				return printAppPasswords(e.stdout, strings.ToLower(pos[0]), aps, *asJSON)
			})
		}}
	revoke := &command{name: "revoke", summary: "revoke an application password of ADDRESS, by its ID or LABEL; the account's open sessions end",
		args: "ADDRESS ID|LABEL", minArgs: 2, maxArgs: 2,
		setup: func(fs *flag.FlagSet) runner {
			return withServer(func(e *env, srv *server.Server, pos []string) error {
				ap, err := srv.Dir.RevokeAppPassword(e.ctx, pos[0], pos[1])
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "application password %d (%s) of %s revoked; the account's open sessions end within seconds\n",
					ap.ID, ap.Label, strings.ToLower(pos[0]))
				return nil
			})
		}}
	// The spellings before `app-password list|revoke`, kept for scripts.
	oldList, oldRevoke := *list, *revoke
	oldList.name, oldList.hidden = "app-passwords", true
	oldRevoke.name, oldRevoke.hidden = "revoke-app-password", true
	return &command{name: "user", summary: "accounts: passwords and application passwords",
		subs: []*command{
			{name: "set-password", summary: "set the password of ADDRESS, read from standard input (at least 12 characters)",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				long: `The password is read without echo on a terminal, else as the first line of
standard input: echo 'a long passphrase' | carepost user set-password ADDRESS.
The account's open sessions end within seconds.`,
				setup: func(fs *flag.FlagSet) runner {
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						pw, err := readPassword(e.stdin, e.stderr)
						if err != nil {
							return err
						}
						if err := srv.Dir.SetPassword(e.ctx, pos[0], pw); err != nil {
							return err
						}
						fmt.Fprintf(e.stdout, "password set for %s\n", strings.ToLower(pos[0]))
						return nil
					})
				}},
			{name: "app-password", summary: "create an application password for a mail client of ADDRESS, printed once",
				args: "ADDRESS", minArgs: 1, maxArgs: 1,
				long: `Each device or client gets its own password, named by a label unique to the
account, so that one can be revoked without the others.`,
				setup: func(fs *flag.FlagSet) runner {
					label := fs.String("label", "", "`NAME` of the device or client, unique for the account (default: application password, then application password 2…)")
					return withServer(func(e *env, srv *server.Server, pos []string) error {
						pw, err := srv.Dir.NewAppPassword(e.ctx, pos[0], *label)
						if err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "application password for %s (shown once; use it in the mail client as the password):\n", strings.ToLower(pos[0]))
						fmt.Fprintln(e.stdout, pw)
						return nil
					})
				},
				subs: []*command{list, revoke}},
			&oldList, &oldRevoke,
		}}
}

// printAppPasswords lists application passwords (never their hashes), one
// a line, or as JSON.
func printAppPasswords(w io.Writer, address string, aps []directory.AppPassword, asJSON bool) error {
	if asJSON {
		type appPassword struct {
			ID       int64  `json:"id"`
			Label    string `json:"label"`
			Created  string `json:"created"`
			LastUsed string `json:"last_used,omitempty"`
		}
		out := make([]appPassword, 0, len(aps))
		for _, ap := range aps {
			out = append(out, appPassword{ap.ID, ap.Label, localTime(ap.CreatedAt), localTime(ap.LastUsed)})
		}
		return writeJSON(w, out)
	}
	if len(aps) == 0 {
		fmt.Fprintf(w, "%s has no application passwords\n", address)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tCREATED\tLAST USED")
	for _, ap := range aps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", ap.ID, ap.Label, localTime(ap.CreatedAt), localTime(ap.LastUsed))
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
		return "", errors.New("no password on standard input (e.g. echo 'a long passphrase' | carepost user set-password ADDRESS)")
	}
	return line, nil
}
