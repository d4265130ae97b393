package sqlite

// migrations run in order, each once, recorded in PRAGMA user_version.
// Append new steps; never edit a step that has shipped.
//
// mailSchemaV1 lives in mail_schema.go (messages, mailboxes, blobs; V7
// the keys of deliveries taken once),
// directorySchemaV1 to V6 and V8 in directory_schema.go (entries,
// credentials, trust space; members' roles; credential epochs; the reason
// of a duplicate national identifier; trust list provenance and CA
// anchors; mailbox S/MIME certificates; V8 registered client
// certificates);
// queueSchemaV1 in queue.go (the outbound queue; V2 the Message-ID of an
// entry); auditSchemaV1 in audit.go (the audit trail; V2 the account an
// event concerns); directorySchemaV7 in inactive.go (the warnings of
// inactive accounts); dmpSchemaV1 in dmp.go (the DMP vault's documents
// and the patients' controls).
var migrations = []string{
	mailSchemaV1,
	directorySchemaV1,
	mailSchemaV2,
	mailSchemaV3,
	mailSchemaV4,
	directorySchemaV2,
	mailSchemaV5,
	directorySchemaV3,
	mailSchemaV6,
	directorySchemaV4,
	queueSchemaV1,
	directorySchemaV5,
	mailSchemaV7,
	directorySchemaV6,
	auditSchemaV1,
	auditSchemaV2,
	queueSchemaV2,
	directorySchemaV7,
	directorySchemaV8,
	dmpSchemaV1,
	nationalSchemaV1, // national_schema.go: the national directory (#27)
}
