package sqlite

import (
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage/blobs"
)

// What each sealed object is bound to (crypto's sealed-blob format,
// version 2: the context is part of the AAD of every chunk).
//
// Every sealed object of a message belongs to its body: the body itself
// (inline in its blobs row, or in the blob store), the header section and
// the summary kept in its digests row. A body has no single owner: one
// delivery to several recipients, a COPY to another mailbox, keep one body
// for several messages of several accounts. Its owner is therefore the
// body itself, named by its blob name: 128 random bits, never reused
// (storage's contract on identifiers), unlike the row IDs, which SQLite
// may give again after the newest row is deleted. The context is
// "<purpose>:<name>":
//
//	body:<name>     the body, inline or in the blob store (blobs.Context)
//	header:<name>   the header section in digests
//	summary:<name>  the summary in digests
//
// So a sealed value copied into another row (another user's message, or
// from header to summary), or a body file renamed to another body's name,
// fails authentication instead of being served to the wrong reader.
//
// What this does not cover: which message points at which body is
// metadata in clear (messages.blob_id). A writer to the database can still
// point a message of one account at another account's body; sealing
// cannot prevent it, only authenticated metadata (a MAC over each message
// row) would. README.md ("What is stored where") states it, with the
// mailbox names, among what encryption at rest leaves in clear.

func headerContext(name string) string  { return "header:" + name }
func summaryContext(name string) string { return "summary:" + name }
func bodyContext(name string) string    { return blobs.Context(bodyPurpose, name) }

// sealBytes seals a small plaintext in memory for context.
func (db *DB) sealBytes(plain []byte, context string) ([]byte, error) {
	return crypto.SealBytes(plain, db.key, context)
}

// unsealBytes opens what sealBytes sealed for context; a version 1 value
// (not migrated, or put there in place of a bound one) is refused.
func (db *DB) unsealBytes(sealed []byte, context string) ([]byte, error) {
	return crypto.OpenBytes(sealed, db.key, context)
}
