package sqlite

// mailSchemaV1: accounts, mailboxes, messages, bodies. Owned by the mail
// store (store.go and friends).
//
// Design notes:
//   - messages is WITHOUT ROWID with primary key (mailbox_id, uid): the rows
//     of one mailbox are stored together in UID order, so SELECT, STATUS and
//     FETCH 1:* are one range scan of the primary key, no extra index.
//   - system flags are a bitmask (flagSeen… in flags.go), keywords a
//     space-separated list (keywords are IMAP atoms, which never hold a
//     space), usually empty: a row stays a few dozen bytes.
//   - a body is stored once in blobs and referenced by every copy; the
//     triggers keep blobs.refs equal to the number of messages pointing at
//     it, whatever statement adds or removes them (deliver, copy, move,
//     expunge, delete mailbox). A blob whose count drops to zero is deleted
//     by the transaction and its file after the commit. (No foreign key on
//     blob_id: it would need an index on messages(blob_id), written on every
//     delivery, only to check deletes that the count already guards.)
//   - mailboxes.keywords is every keyword ever used in the mailbox (for the
//     FLAGS response of SELECT, RFC 9051 §7.3.5), never shrunk, so STATUS
//     and SELECT need not scan messages to find them.
//   - mailboxes.recent_uid is the \Recent watermark (RFC 3501 §2.3.2):
//     messages above it have not yet been seen by a claiming SELECT.
//   - accounts.last_uidvalidity makes every new mailbox of the account get
//     a UIDVALIDITY greater than any before (RFC 9051 §2.3.1.1), also after
//     a delete and re-create of the same name.
const mailSchemaV1 = `
CREATE TABLE accounts (
	id               INTEGER PRIMARY KEY,
	name             TEXT NOT NULL UNIQUE,
	last_uidvalidity INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE mailboxes (
	id             INTEGER PRIMARY KEY,
	account_id     INTEGER NOT NULL REFERENCES accounts(id),
	name           TEXT NOT NULL,
	special_use    TEXT NOT NULL DEFAULT '',
	uidvalidity    INTEGER NOT NULL,
	uidnext        INTEGER NOT NULL DEFAULT 1,
	highest_modseq INTEGER NOT NULL DEFAULT 1,
	recent_uid     INTEGER NOT NULL DEFAULT 0,
	keywords       TEXT NOT NULL DEFAULT '',
	UNIQUE (account_id, name)
);

CREATE TABLE subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	name       TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE blobs (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	size INTEGER NOT NULL,
	refs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blobs_unreferenced ON blobs(id) WHERE refs <= 0;

CREATE TABLE messages (
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
	uid           INTEGER NOT NULL,
	blob_id       INTEGER NOT NULL,
	flags         INTEGER NOT NULL DEFAULT 0,
	keywords      TEXT NOT NULL DEFAULT '',
	internal_date INTEGER NOT NULL,
	date_offset   INTEGER NOT NULL DEFAULT 0,
	size          INTEGER NOT NULL,
	modseq        INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE TRIGGER messages_ref AFTER INSERT ON messages BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;
END;
CREATE TRIGGER messages_unref AFTER DELETE ON messages BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
END;
`

// mailSchemaV2: small bodies inline (inline.go). A blobs row whose data is
// not NULL holds the sealed body itself; its name has no file.
const mailSchemaV2 = `
ALTER TABLE blobs ADD COLUMN data BLOB;
`

// mailSchemaV3: the header section of each body sealed apart (header.go);
// NULL for bodies stored before, or whose header is over 64 KiB.
const mailSchemaV3 = `
ALTER TABLE blobs ADD COLUMN header BLOB;
`

// mailSchemaV4: the digests of a body (header.go) move to a table of their
// own, with its summary (storage.Summarizer). In the blobs row, the header
// came after the inline body: SQLite reads a row's columns in order, so
// reading a header walked the body's overflow pages first, which made
// FETCH of a message list read every body from disk.
const mailSchemaV4 = `
CREATE TABLE digests (
	blob_id INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
	header  BLOB, -- sealed header section, NULL if over 64 KiB
	summary BLOB  -- sealed summary, NULL if none
);
INSERT INTO digests (blob_id, header) SELECT id, header FROM blobs WHERE header IS NOT NULL;
ALTER TABLE blobs DROP COLUMN header;
`

// mailSchemaV5: what changed since a MODSEQ (changes.go), and mailbox IDs
// that are never reused (storage's contract: SQLite gives a new row the
// highest ID + 1, so deleting the newest mailbox handed its ID to the
// next one; AUTOINCREMENT never gives an ID twice).
//   - mailboxes is rebuilt with AUTOINCREMENT (SQLite cannot add it to a
//     table; the rebuild is SQLite's twelve-step ALTER, run with foreign
//     keys off, see migrate). sqlite_sequence starts at the highest ID in
//     use: an ID deleted before this step above it may come back once.
//   - tombstones: one row per expunged UID (EXPUNGE, MOVE out, the
//     messages a rename of INBOX carries away), keyed for "the expunges of
//     this mailbox after MODSEQ n" (RFC 7162 §3.2.5.2, VANISHED
//     (EARLIER)), and by age for pruning (Options.ChangeWindow).
//     mailboxes.expunged_modseq is the highest MODSEQ of a pruned
//     tombstone: a caller with an older MODSEQ may have missed expunges.
//     For existing mailboxes it starts at their HIGHESTMODSEQ, since the
//     expunges before this step left no tombstone.
//   - messages_modseq: Changes reads the messages changed after a MODSEQ
//     without scanning the mailbox (a session pulls Changes after every
//     hint).
//   - account_changes: the log of mailbox creations, deletions, renames
//     and subscription changes, numbered by accounts.change_seq;
//     accounts.change_floor is the highest pruned number.
const mailSchemaV5 = foreignKeysOff + `
CREATE TABLE mailboxes_new (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id      INTEGER NOT NULL REFERENCES accounts(id),
	name            TEXT NOT NULL,
	special_use     TEXT NOT NULL DEFAULT '',
	uidvalidity     INTEGER NOT NULL,
	uidnext         INTEGER NOT NULL DEFAULT 1,
	highest_modseq  INTEGER NOT NULL DEFAULT 1,
	recent_uid      INTEGER NOT NULL DEFAULT 0,
	keywords        TEXT NOT NULL DEFAULT '',
	expunged_modseq INTEGER NOT NULL DEFAULT 0,
	UNIQUE (account_id, name)
);
INSERT INTO mailboxes_new (id, account_id, name, special_use, uidvalidity, uidnext, highest_modseq, recent_uid, keywords, expunged_modseq)
	SELECT id, account_id, name, special_use, uidvalidity, uidnext, highest_modseq, recent_uid, keywords, highest_modseq FROM mailboxes;
DROP TABLE mailboxes;
ALTER TABLE mailboxes_new RENAME TO mailboxes;

CREATE TABLE tombstones (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
	modseq     INTEGER NOT NULL,
	uid        INTEGER NOT NULL,
	at         INTEGER NOT NULL, -- Unix nanoseconds
	PRIMARY KEY (mailbox_id, modseq, uid)
) WITHOUT ROWID;
CREATE INDEX tombstones_at ON tombstones(at);

CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);

ALTER TABLE accounts ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN change_floor INTEGER NOT NULL DEFAULT 0;
CREATE TABLE account_changes (
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	seq        INTEGER NOT NULL,
	kind       INTEGER NOT NULL, -- storage.AccountChangeKind
	mailbox_id INTEGER NOT NULL DEFAULT 0,
	name       TEXT NOT NULL,
	old_name   TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL, -- Unix nanoseconds
	PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE INDEX account_changes_at ON account_changes(at);
`

// mailSchemaV6: every sealed value bound to its body (seal.go), sealed
// format version 2. Sealing again what version 1 sealed is Go code
// (reseal.go), run at Open while this row is there; the row goes once all
// is sealed again, so a crash half-way resumes at the next Open.
//
// Written to run again harmlessly (tests of earlier steps roll
// user_version back over it): sealing again finds nothing to do on data
// already in version 2.
const mailSchemaV6 = `
CREATE TABLE IF NOT EXISTS store_tasks (
	task TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT OR IGNORE INTO store_tasks (task) VALUES ('reseal-v2');
`

// mailSchemaV7: the keys of Delivery.Once, per mailbox (storage.Store
// Received), pruned with the tombstones.
const mailSchemaV7 = `
CREATE TABLE IF NOT EXISTS received_once (
	mailbox_id INTEGER NOT NULL,
	key        TEXT NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS received_once_at ON received_once(at);
`
