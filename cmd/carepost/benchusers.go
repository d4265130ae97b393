package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/carepost/carepost/directory"
)

// benchUsers creates the test accounts that load tools expect (Dovecot's
// imaptest stress uses user1..user100 with one password): professionals
// with synthetic RPPS numbers (99 followed by the index, with a valid key),
// profession 10. Accounts that exist already only get the password again;
// accounts of another --format share the numbers, with the reason recorded.
func benchUsers(fs *flag.FlagSet) runner {
	count := fs.Int("count", 100, "number of accounts")
	format := fs.String("format", "user%d@carepost.test", "address of account i (1..count), printf format")
	password := fs.String("password", "", "password of every account (at least 12 characters)")
	return func(e *env, _ []string) error {
		if *count < 1 || *count > 99999999 || !strings.Contains(*format, "%d") {
			return usageError("bench users: give a --count from 1 to 99999999 and a --format with %%d")
		}
		srv, err := e.open()
		if err != nil {
			return err
		}
		ctx, stdout := e.ctx, e.stdout
		for i := 1; i <= *count; i++ {
			addr := fmt.Sprintf(*format, i)
			rpps := directory.LuhnComplete(fmt.Sprintf("99%08d", i))
			in := directory.ProfessionalInput{NationalID: "8" + rpps,
				FirstName: "Bench", LastName: fmt.Sprintf("User %d", i), Profession: "10", Address: addr}
			_, err := srv.AddProfessional(ctx, in)
			if errors.Is(err, directory.ErrDuplicateNationalID) {
				// Another --format made accounts with the same numbers.
				in.AllowDuplicateID, in.DuplicateReason = true, "test account of carepost bench users"
				_, err = srv.AddProfessional(ctx, in)
			}
			if err != nil && !errors.Is(err, directory.ErrExists) {
				return err
			}
			if err := srv.Dir.SetPassword(ctx, addr, *password); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "%d accounts ready: %s … %s\n", *count, fmt.Sprintf(*format, 1), fmt.Sprintf(*format, *count))
		return nil
	}
}
