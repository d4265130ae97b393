package smime

import (
	"sync"

	"github.com/smallstep/pkcs7"
)

// The library keeps its algorithm choices in package-level variables
// (docs/domain.md §6b): DES-CBC and SHA-1 unless told otherwise. They are
// set here once, when the package loads, and never per request:
// AES-256-CBC content encryption (RFC 8551 §2.7, RFC 3565), RSA PKCS#1
// v1.5 key transport, SHA-256 digests (RFC 5754). Each SignedData also
// gets SetDigestAlgorithm(SHA-256), so that nothing depends on the
// default.
//
// The one choice made per call is the key transport (PKCS#1 v1.5 or
// OAEP, EncryptOptions.OAEP): the library reads it from
// pkcs7.KeyEncryptionAlgorithm inside Encrypt. libMu serialises that: an
// encryption with the default holds it for reading; one with OAEP holds
// it for writing while the variable says OAEP, and puts the default back
// before releasing it. Nothing else in the process writes these variables.
var libMu sync.RWMutex

func init() {
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES256CBC
	pkcs7.KeyEncryptionAlgorithm = pkcs7.OIDEncryptionAlgorithmRSA
	if err := pkcs7.SetDefaultDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256); err != nil {
		panic("smime: " + err.Error()) // a constant the library lists: cannot fail
	}
}
