package main

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

var versionCommand = &command{
	name:    "version",
	summary: "print the version, the commit and the Go version of this binary",
	setup: func(fs *flag.FlagSet) runner {
		return func(e *env, _ []string) error {
			version, commit := "(unknown)", "unknown (built without version control information)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				version = bi.Main.Version // "(devel)" for a build from a clone
				var rev, at, modified string
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						rev = s.Value
					case "vcs.time":
						at = s.Value
					case "vcs.modified":
						if s.Value == "true" {
							modified = ", with uncommitted changes"
						}
					}
				}
				if rev != "" {
					commit = rev
					if at != "" || modified != "" {
						commit += " (" + at + modified + ")"
					}
				}
			}
			fmt.Fprintf(e.stdout, "carepost %s\ncommit: %s\ngo: %s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		}
	},
}
