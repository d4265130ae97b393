package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/carepost/carepost/server"
)

// Only `carepost serve` (at its first start) and `carepost init` create a
// data directory. Every other command opens an existing one and refuses,
// naming where it looked, when there is none: an administrative command
// run from the wrong folder used to create a new key, CA and store there,
// and write the user where the server would never see it (issue 22).

// loadConfig reads the configuration named by the global flags; --data
// overrides its data key.
func loadConfig(c commonFlags) (server.Config, error) {
	cfg, err := server.Load(c.config)
	if err != nil {
		return cfg, err
	}
	if c.data != "" {
		cfg.Data = c.data
	}
	return cfg, nil
}

// storeFile is what makes a directory a Carepost data directory.
func storeFile(data string) string { return filepath.Join(data, "store", "carepost.db") }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// keyFile is where the at-rest key of cfg is.
func keyFile(cfg server.Config) string {
	if cfg.AtRestKeyFile != "" {
		return cfg.AtRestKeyFile
	}
	return filepath.Join(cfg.Data, "keys", "at-rest.key")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// noDataError is the refusal of a command run where there is no data
// directory.
func noDataError(cfg server.Config, c commonFlags) error {
	from := "the default, ./carepost-data"
	switch {
	case c.data != "":
		from = "given with --data"
	case c.config != "":
		from = "the data key of " + c.config
	}
	return fmt.Errorf("there is no Carepost data directory at %s (%s): nothing was changed. "+
		"Run the command where the server's data directory is, or name it with --data DIR, or give the server's configuration with --config FILE. "+
		"To create a new one: carepost init (or carepost serve, at its first start)", absPath(cfg.Data), from)
}

// openExisting opens the data directory named by the global flags, which
// must exist, and its at-rest key.
func openExisting(e *env) (*server.Server, error) {
	cfg, err := loadConfig(e.common)
	if err != nil {
		return nil, err
	}
	if !exists(storeFile(cfg.Data)) {
		return nil, noDataError(cfg, e.common)
	}
	if k := keyFile(cfg); !exists(k) {
		return nil, fmt.Errorf("the at-rest key %s is missing: the mail in %s cannot be read without it. Restore it from its backup, or set at_rest_key_file to where it is; nothing was changed",
			absPath(k), absPath(cfg.Data))
	}
	return server.Open(cfg, newLogger(cfg.Log.Level, cfg.Log.Format, e.stderr))
}

// creation remembers what existed before a data directory is created, so
// that a failure can remove what was made and leave nothing half-made.
type creation struct {
	data       string
	dataExists bool
	before     map[string]bool // entries of data before
	key        string
	keyExists  bool
}

func beginCreation(cfg server.Config) *creation {
	cr := &creation{data: cfg.Data, key: keyFile(cfg), before: map[string]bool{}}
	if ents, err := os.ReadDir(cfg.Data); err == nil {
		cr.dataExists = true
		for _, de := range ents {
			cr.before[de.Name()] = true
		}
	}
	cr.keyExists = exists(cr.key)
	return cr
}

// newKey says whether the at-rest key was created since beginCreation.
func (cr *creation) newKey() bool { return !cr.keyExists && exists(cr.key) }

// undo removes what was created since beginCreation, and only that.
func (cr *creation) undo() error {
	var errs []error
	if !cr.keyExists {
		if err := os.Remove(cr.key); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if !cr.dataExists {
		errs = append(errs, os.RemoveAll(cr.data))
		return errors.Join(errs...)
	}
	ents, err := os.ReadDir(cr.data)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, de := range ents {
		if !cr.before[de.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(cr.data, de.Name())))
		}
	}
	return errors.Join(errs...)
}

// createData opens (and so creates) a new data directory. On failure
// nothing of it is left.
func createData(e *env, cfg server.Config) (*server.Server, *creation, error) {
	cr := beginCreation(cfg)
	srv, err := server.Open(cfg, newLogger(cfg.Log.Level, cfg.Log.Format, e.stderr))
	if err != nil {
		if uerr := cr.undo(); uerr != nil {
			err = fmt.Errorf("%w (and removing what was created failed: %v)", err, uerr)
		}
		return nil, nil, err
	}
	return srv, cr, nil
}

// printKeyNotice tells, once, where the new at-rest key is and that it
// must be backed up.
func printKeyNotice(w io.Writer, cfg server.Config) {
	fmt.Fprintf(w, "\nThe at-rest key was created at %s.\n"+
		"Back it up now, and keep the copy apart from the backups of the data directory: without it the mail in %s cannot be read, and with it anyone holding a copy of the data can.\n",
		absPath(keyFile(cfg)), absPath(cfg.Data))
}

// initCommand is `carepost init`.
var initCommand = &command{
	name:    "init",
	summary: "create a new data directory: at-rest key, development CA and TLS certificate, empty store",
	long: `carepost serve does the same at its first start; init lets the directory be
filled (dir add-professional, user set-password...) before the server runs.
An existing data directory is left alone.`,
	setup: func(fs *flag.FlagSet) runner {
		return func(e *env, pos []string) error {
			cfg, err := loadConfig(e.common)
			if err != nil {
				return err
			}
			if exists(storeFile(cfg.Data)) {
				return fmt.Errorf("%s is a Carepost data directory already: nothing was changed", absPath(cfg.Data))
			}
			srv, cr, err := createData(e, cfg)
			if err != nil {
				return err
			}
			ca := srv.PKI.CAPath()
			if err := srv.Close(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Created the data directory %s.\nCA certificate for mail clients: %s (or: carepost pki export ca)\n", absPath(cfg.Data), ca)
			if cr.newKey() {
				printKeyNotice(e.stdout, cfg)
			}
			return nil
		}
	},
}
