package sqlite

// directorySchemaV1: directory entries, members, credentials, trust space.
// Owned by directory.go.
//
// Times are Unix nanoseconds (0 = never). Addresses are stored canonical
// (lower case, see directory.ParseAddress), so plain = comparisons are
// case-insensitive matches.
//
// search_key holds the searchable columns folded to lower case without
// accents (directory.go: dirSearchKey), so Search is one LIKE over one column
// instead of seven; a LIKE '%…%' cannot use a B-tree index whatever the
// layout, and a scan of one narrow column is what keeps it fast.
const directorySchemaV1 = `
CREATE TABLE dir_entries (
	address        TEXT PRIMARY KEY,
	kind           TEXT NOT NULL,
	status         TEXT NOT NULL,
	national_id    TEXT NOT NULL DEFAULT '',
	profession     TEXT NOT NULL DEFAULT '',
	specialty      TEXT NOT NULL DEFAULT '',
	first_name     TEXT NOT NULL DEFAULT '',
	last_name      TEXT NOT NULL DEFAULT '',
	organisation   TEXT NOT NULL DEFAULT '',
	description    TEXT NOT NULL DEFAULT '',
	liste_rouge    INTEGER NOT NULL DEFAULT 0,
	notify_address TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	last_login     INTEGER NOT NULL DEFAULT 0,
	search_key     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Lookups of a professional's mailboxes by RPPS/ADELI (imports, PSC).
CREATE INDEX dir_entries_national_id ON dir_entries(national_id) WHERE national_id <> '';

-- Delegations, many-to-many. The primary key serves "members of a
-- mailbox", the second index "mailboxes a user is a member of" (at every
-- login).
CREATE TABLE dir_members (
	mailbox TEXT NOT NULL REFERENCES dir_entries(address) ON DELETE CASCADE,
	member  TEXT NOT NULL REFERENCES dir_entries(address) ON DELETE CASCADE,
	PRIMARY KEY (mailbox, member)
) WITHOUT ROWID;
CREATE INDEX dir_members_member ON dir_members(member, mailbox);

-- Secrets apart from entries, so that listings never read them.
CREATE TABLE dir_passwords (
	address TEXT PRIMARY KEY REFERENCES dir_entries(address) ON DELETE CASCADE,
	hash    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE dir_app_passwords (
	id         INTEGER PRIMARY KEY,
	address    TEXT NOT NULL REFERENCES dir_entries(address) ON DELETE CASCADE,
	label      TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX dir_app_passwords_address ON dir_app_passwords(address);

CREATE TABLE dir_trusted_domains (
	domain           TEXT PRIMARY KEY,
	description      TEXT NOT NULL DEFAULT '',
	operator_cert_dn TEXT NOT NULL DEFAULT '',
	updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
`

// directorySchemaV2: each member of a shared mailbox has a role (member or
// manager, directory.Role); the members of existing mailboxes keep the
// rights they had to read, flag and insert, and none gets more.
const directorySchemaV2 = `
ALTER TABLE dir_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
	CHECK (role IN ('member', 'manager'));
`

// directorySchemaV3: each account has a credential epoch, moved in the
// same transaction as a new password, a revoked application password or a
// change of status, and what moved it last (directory.AccountState). The
// sessions of a running server read it to end those opened before the
// change, whichever process made it.
const directorySchemaV3 = `
ALTER TABLE dir_entries ADD COLUMN cred_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dir_entries ADD COLUMN cred_change TEXT NOT NULL DEFAULT '';
`

// directorySchemaV4: why a professional's national identifier is shared
// with another mailbox (directory.Entry.DuplicateIDReason): the operator
// gives it when allowing the duplicate, and it is kept with the entry.
const directorySchemaV4 = `
ALTER TABLE dir_entries ADD COLUMN duplicate_id_reason TEXT NOT NULL DEFAULT '';
`

// directorySchemaV5: the trust space's provenance (the source and date of
// the last white-list import, directory.TrustListInfo: one row) and the
// operators' CA certificates (directory.TrustAnchor), so that every
// process sees what `carepost trust import` and `trust add-ca` stored.
const directorySchemaV5 = `
CREATE TABLE dir_trust_list (
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	source       TEXT NOT NULL,
	generated_at INTEGER NOT NULL DEFAULT 0,
	imported_at  INTEGER NOT NULL
);

CREATE TABLE dir_trust_anchors (
	fingerprint TEXT PRIMARY KEY,
	subject     TEXT NOT NULL,
	der         BLOB NOT NULL,
	added_at    INTEGER NOT NULL
) WITHOUT ROWID;
`

// directorySchemaV6: the S/MIME certificates of mailboxes
// (directory.MailboxCert, directory_certs.go): ours, with their private
// keys sealed (NULL: the key is not held here, end-to-end mode), and
// other operators' recipients' (remote), imported by hand (fetched_at 0)
// or fetched from their operator and cached. A replaced certificate's row
// stays: its key still opens the mail encrypted to it. No foreign key to
// dir_entries: a remote address has no entry.
const directorySchemaV6 = `
CREATE TABLE IF NOT EXISTS dir_mailbox_certs (
	address     TEXT NOT NULL,
	usage       TEXT NOT NULL CHECK (usage IN ('sign', 'encrypt')),
	fingerprint TEXT NOT NULL,
	der         BLOB NOT NULL,
	chain       BLOB NOT NULL DEFAULT x'',
	sealed_key  BLOB,
	not_after   INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	remote      INTEGER NOT NULL DEFAULT 0,
	fetched_at  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (address, usage, fingerprint)
) WITHOUT ROWID;
`

// directorySchemaV8: the TLS client certificates registered for mailboxes
// (directory.ClientCert, directory_clientcerts.go): practice software logs
// in as its applicative mailbox with one. The fingerprint is the key: one
// certificate logs in as one mailbox.
const directorySchemaV8 = `
CREATE TABLE IF NOT EXISTS dir_client_certs (
	fingerprint TEXT PRIMARY KEY,
	address     TEXT NOT NULL REFERENCES dir_entries(address),
	der         BLOB NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	not_after   INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dir_client_certs_address ON dir_client_certs(address);
`
