package imap

import "testing"

// validUTF7 accepts what go-imap's decoder (internal/utf7, v2.0.0-beta.8)
// accepts, so that the guard refuses no name the library would take.
func TestValidUTF7(t *testing.T) {
	for name, want := range map[string]bool{
		"INBOX": true, "Caf&AOk-": true, "&-": true, "a&-b": true, "&ZeVnLIqe-": true,
		"été":  true, // raw UTF-8 is accepted by the library
		"&Jjo": false, "&Jjo!": false, "&AGE-": false, "&AOk-&AOk-": false, "&AOk=-": false,
		"&2D3cAA-": true, "&2D0-": false, "a\x01b": false, "&": false,
	} {
		if got := validUTF7(name); got != want {
			t.Errorf("validUTF7(%q) = %v, want %v", name, got, want)
		}
	}
}
