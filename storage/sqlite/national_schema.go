package sqlite

// nationalSchemaV1: the national directory (directory.NationalStore,
// national.go), imported from the public extractions by `carepost dir
// import`: the professionals of PS_LibreAcces (dir_national_people, one
// row a national identifier, its practice places folded in) and the
// secure-messaging addresses of the MSSanté extraction
// (dir_national_mailboxes, one row an address). They are not mailboxes of
// this server (those are dir_entries, which an import never touches).
//
// A record absent from a new extraction is closed (status, closed_at),
// never deleted: the trace stays. first_seen is the time of the import
// that added it, changed_at of the last that changed it (changed_seq its
// dir_national_imports.id); an active record was last seen by the last
// import of its format (dir_national_imports), so that an import does not
// rewrite the million rows it finds unchanged.
//
// sort_key is directory.ListingSortKey of the record (folded last name,
// first name, address, national id): the order of searches, indexed so
// that a page of a large result is read in order, not sorted.
//
// The *_fts tables are the search index: FTS5, contentless (the text is
// in the tables above; the index keeps only the postings), one document
// a record with one column per searchable field, tokenizer unicode61
// with diacritics removed (so case and accents fold as
// directory.FoldSearch does), prefix indexes of 2 and 3 characters so
// that short prefixes ("du*") read one posting list instead of merging
// every token that starts with them.
const nationalSchemaV1 = `
CREATE TABLE IF NOT EXISTS dir_national_imports (
	id        INTEGER PRIMARY KEY,
	format    TEXT NOT NULL,
	at        INTEGER NOT NULL,
	records   INTEGER NOT NULL DEFAULT 0,
	added     INTEGER NOT NULL DEFAULT 0,
	changed   INTEGER NOT NULL DEFAULT 0,
	closed    INTEGER NOT NULL DEFAULT 0,
	reopened  INTEGER NOT NULL DEFAULT 0,
	unchanged INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS dir_national_people (
	id               INTEGER PRIMARY KEY,
	national_id      TEXT NOT NULL UNIQUE,
	civility         TEXT NOT NULL DEFAULT '',
	last_name        TEXT NOT NULL DEFAULT '',
	first_name       TEXT NOT NULL DEFAULT '',
	profession       TEXT NOT NULL DEFAULT '',
	profession_label TEXT NOT NULL DEFAULT '',
	specialty        TEXT NOT NULL DEFAULT '',
	specialty_label  TEXT NOT NULL DEFAULT '',
	organisation     TEXT NOT NULL DEFAULT '',
	structure_id     TEXT NOT NULL DEFAULT '',
	post_code        TEXT NOT NULL DEFAULT '',
	city             TEXT NOT NULL DEFAULT '',
	places           TEXT NOT NULL DEFAULT '',
	sort_key         TEXT NOT NULL DEFAULT '',
	has_address      INTEGER NOT NULL DEFAULT 0,
	status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
	first_seen       INTEGER NOT NULL,
	changed_at       INTEGER NOT NULL,
	closed_at        INTEGER NOT NULL DEFAULT 0,
	changed_seq      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dir_national_people_sort ON dir_national_people(sort_key);
CREATE INDEX IF NOT EXISTS dir_national_people_changed ON dir_national_people(changed_seq);
CREATE INDEX IF NOT EXISTS dir_national_people_closed ON dir_national_people(national_id) WHERE status = 'closed';
-- The professionals with no active address, in order (searches that
-- include them: has_address is kept by every import).
CREATE INDEX IF NOT EXISTS dir_national_people_unaddressed ON dir_national_people(sort_key) WHERE has_address = 0;

CREATE TABLE IF NOT EXISTS dir_national_mailboxes (
	id               INTEGER PRIMARY KEY,
	address          TEXT NOT NULL UNIQUE,
	kind             TEXT NOT NULL,
	national_id      TEXT NOT NULL DEFAULT '',
	structure_id     TEXT NOT NULL DEFAULT '',
	service          TEXT NOT NULL DEFAULT '',
	last_name        TEXT NOT NULL DEFAULT '',
	first_name       TEXT NOT NULL DEFAULT '',
	profession       TEXT NOT NULL DEFAULT '',
	profession_label TEXT NOT NULL DEFAULT '',
	specialty        TEXT NOT NULL DEFAULT '',
	specialty_label  TEXT NOT NULL DEFAULT '',
	organisation     TEXT NOT NULL DEFAULT '',
	post_code        TEXT NOT NULL DEFAULT '',
	city             TEXT NOT NULL DEFAULT '',
	sort_key         TEXT NOT NULL DEFAULT '',
	status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
	first_seen       INTEGER NOT NULL,
	changed_at       INTEGER NOT NULL,
	closed_at        INTEGER NOT NULL DEFAULT 0,
	changed_seq      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dir_national_mailboxes_sort ON dir_national_mailboxes(sort_key);
CREATE INDEX IF NOT EXISTS dir_national_mailboxes_changed ON dir_national_mailboxes(changed_seq);
CREATE INDEX IF NOT EXISTS dir_national_mailboxes_closed ON dir_national_mailboxes(address) WHERE status = 'closed';
CREATE INDEX IF NOT EXISTS dir_national_mailboxes_holder ON dir_national_mailboxes(national_id) WHERE national_id <> '';

CREATE VIRTUAL TABLE IF NOT EXISTS dir_national_people_fts USING fts5(
	mail, last, first, prof, org, city, ids,
	content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS dir_national_mailboxes_fts USING fts5(
	mail, last, first, prof, org, city, ids,
	content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
`
