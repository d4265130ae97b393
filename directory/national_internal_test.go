package directory

import "testing"

func TestNationalHeaders(t *testing.T) {
	if len(PSLibreAccesHeader) != 52 || len(MSSanteHeader) != 31 {
		t.Fatalf("headers: %d and %d columns", len(PSLibreAccesHeader), len(MSSanteHeader))
	}
}
