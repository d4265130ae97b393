package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/carepost/carepost/directory"
)

// The national directory (directory.NationalStore) over the tables of
// national_schema.go.
//
// Import: the records are first staged, streaming, in a temporary table
// (temp.nat_stage, on disk, so memory stays flat whatever the file) in a
// transaction of the temporary database only, which takes no lock on the
// directory; then one immediate transaction applies the difference with a
// handful of set-based statements (reopen, change, touch the unchanged,
// close the absent, add the new), refreshes the search index of the
// records added or changed, and records the import. A failure anywhere
// rolls it all back: readers see the old directory or the new one.
//
// Search: the index is FTS5 (one contentless document a record, one
// column a searchable field). It was chosen over a table of (token,
// record) pairs because FTS5 keeps each token's postings compressed in
// segments built in memory and merged, so building the index of a
// million records costs seconds where a B-tree of twenty million pairs
// costs minutes, and answers an AND of prefixes by merging sorted posting
// lists. The trigram tokenizer (true "contains" for 3 characters and
// more) was not taken: its index is several times larger and slower to
// build than the word index, and address-book queries are word prefixes
// ("dup*", "cardiologue lyon"). A page is then read in sort_key order
// from the matching rows; a query with no text condition walks the
// sort_key index and stops at the page's end.

// natTable describes one of the two record sets.
type natTable struct {
	name, fts, key string
	cols           []string // data columns, compared and copied
	extra          []string // staged only (search text)
}

var (
	natPeople = natTable{name: "dir_national_people", fts: "dir_national_people_fts", key: "national_id",
		cols: []string{"civility", "last_name", "first_name", "profession", "profession_label", "specialty",
			"specialty_label", "organisation", "structure_id", "post_code", "city", "places", "sort_key"},
		extra: []string{"f_org", "f_city", "f_ids"}}
	natMailboxes = natTable{name: "dir_national_mailboxes", fts: "dir_national_mailboxes_fts", key: "address",
		cols: []string{"kind", "national_id", "structure_id", "service", "last_name", "first_name", "profession",
			"profession_label", "specialty", "specialty_label", "organisation", "post_code", "city", "sort_key"}}
)

// natCacheKiB is the page cache of the import's connection, per database
// (main and temp).
const natCacheKiB = 16 << 10

// natStageRows is the number of records of one INSERT into the stage.
const natStageRows = 100

func natTableOf(f directory.NationalFormat) natTable {
	if f == directory.FormatMSSante {
		return natMailboxes
	}
	return natPeople
}

// natPlaces encodes practice places for the places column: fields split
// by U+001F, places by U+001E (neither occurs in the files' text).
func natPlaces(ps []directory.PracticePlace) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(0x1e)
		}
		b.WriteString(strings.Join([]string{p.StructureID, p.Organisation, p.Mode, p.PostCode, p.City}, "\x1f"))
	}
	return b.String()
}

// natPersonRow is a person's stage row: key, cols, extra.
func natPersonRow(p directory.NationalPerson, args []any) []any {
	var first directory.PracticePlace
	if len(p.Places) > 0 {
		first = p.Places[0]
	}
	var org, city, ids []string
	for _, pl := range p.Places {
		org = append(org, pl.Organisation)
		city = append(city, pl.City, pl.PostCode)
		ids = append(ids, pl.StructureID)
	}
	key := directory.ListingSortKey(directory.Listing{LastName: p.LastName, FirstName: p.FirstName, NationalID: p.NationalID})
	return append(args, p.NationalID, p.Civility, p.LastName, p.FirstName, p.Profession, p.ProfessionLabel,
		p.Specialty, p.SpecialtyLabel, first.Organisation, first.StructureID, first.PostCode, first.City,
		natPlaces(p.Places), key, strings.Join(org, " ; "), strings.Join(city, " ; "), strings.Join(ids, " "))
}

func natMailboxRow(m directory.NationalMailbox, args []any) []any {
	key := directory.ListingSortKey(directory.Listing{LastName: m.LastName, FirstName: m.FirstName, Address: m.Address, NationalID: m.NationalID})
	return append(args, m.Address, string(m.Kind), m.NationalID, m.StructureID, m.Service, m.LastName, m.FirstName,
		m.Profession, m.ProfessionLabel, m.Specialty, m.SpecialtyLabel, m.Organisation, m.PostCode, m.City, key)
}

// stageInsert is the INSERT of n records into the stage, in file order
// (the stage is appended to; its index is built once it is full, and
// natDedup folds the records given twice).
func (t natTable) stageInsert(n int) string {
	cols := append(append([]string{"k"}, t.cols...), t.extra...)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	var b strings.Builder
	b.WriteString("INSERT INTO temp.nat_stage (" + strings.Join(cols, ", ") + ") VALUES ")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// natDedup indexes the stage by key and folds the keys given more than
// once: an address keeps its last line; a professional whose lines are
// not consecutive keeps the first, with the practice places of all.
func natDedup(ctx context.Context, conn *sql.Conn, t natTable) error {
	qs := []string{
		`CREATE INDEX temp.nat_stage_k ON nat_stage(k)`,
		`CREATE TEMP TABLE nat_dups AS SELECT k, min(rowid) AS first, max(rowid) AS last FROM temp.nat_stage GROUP BY k HAVING count(*) > 1`,
	}
	keep := "last"
	if t.name == natPeople.name {
		keep = "first"
		qs = append(qs, `UPDATE temp.nat_stage AS s SET places = g.places, f_org = g.f_org, f_city = g.f_city, f_ids = g.f_ids
			FROM (SELECT d.first AS first, group_concat(x.places, char(30)) AS places, group_concat(x.f_org, ' ; ') AS f_org,
				group_concat(x.f_city, ' ; ') AS f_city, group_concat(x.f_ids, ' ') AS f_ids
				FROM temp.nat_dups AS d JOIN temp.nat_stage AS x ON x.k = d.k GROUP BY d.k) AS g
			WHERE s.rowid = g.first`)
	}
	qs = append(qs, `DELETE FROM temp.nat_stage WHERE k IN (SELECT k FROM temp.nat_dups) AND rowid NOT IN (SELECT `+keep+` FROM temp.nat_dups)`,
		`DROP TABLE temp.nat_dups`)
	for _, q := range qs {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: national import: %w", err)
		}
	}
	return nil
}

// ImportNational implements directory.NationalStore.
func (db *DB) ImportNational(ctx context.Context, format directory.NationalFormat, at time.Time, next func() (directory.NationalBatch, error)) (directory.NationalCounts, error) {
	var counts directory.NationalCounts
	t := natTableOf(format)
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return counts, err
	}
	defer conn.Close()
	exec := func(q string, args ...any) (int, error) {
		res, err := conn.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, fmt.Errorf("sqlite: national import: %w", err)
		}
		n, err := res.RowsAffected()
		return int(n), err
	}
	cols := append(append([]string{"k TEXT NOT NULL"}, t.cols...), t.extra...)
	for i := 1; i < len(cols); i++ {
		cols[i] += " TEXT NOT NULL"
	}
	// A larger page cache for the import's connection (the writer's,
	// back to the default after): the stage and the indexes of a
	// million records are written in key order, not file order, and
	// with the default 2 MiB every insert went to the disk. The cache
	// is a bound, not a share of the file, so memory stays flat
	// whatever the file's size: measured on a million lines, 16 MiB a
	// database gave a peak RSS of 164 MiB and 64 MiB 512 MiB for a few
	// seconds less (BENCHMARKS.md).
	for _, schema := range []string{"main", "temp"} {
		if _, err := exec(`PRAGMA ` + schema + `.cache_size = -` + fmt.Sprint(natCacheKiB)); err != nil {
			return counts, err
		}
		defer conn.ExecContext(context.Background(), `PRAGMA `+schema+`.cache_size = -2000`)
	}
	if _, err := exec(`DROP TABLE IF EXISTS temp.nat_stage`); err != nil {
		return counts, err
	}
	if _, err := exec(`CREATE TEMP TABLE nat_stage (` + strings.Join(cols, ", ") + `)`); err != nil {
		return counts, err
	}
	defer conn.ExecContext(context.Background(), `DROP TABLE IF EXISTS temp.nat_stage`)

	// Stage, in a transaction of the temporary database alone (a
	// deferred BEGIN that reads nothing of the main database holds no
	// lock on it).
	if _, err := exec(`BEGIN DEFERRED`); err != nil {
		return counts, err
	}
	t0 := time.Now()
	if err := db.natStage(ctx, conn, t, next); err != nil {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		return counts, err
	}
	natTrace(t0, "stage")
	t0 = time.Now()
	if err := natDedup(ctx, conn, t); err != nil {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		return counts, err
	}
	natTrace(t0, "index the stage, fold duplicates")
	if _, err := exec(`COMMIT`); err != nil {
		return counts, err
	}

	// Apply, in one transaction.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return counts, err
	}
	defer tx.Rollback()
	counts, err = natApply(ctx, tx, format, t, at)
	if err != nil {
		return directory.NationalCounts{}, err
	}
	if err := tx.Commit(); err != nil {
		return directory.NationalCounts{}, err
	}
	return counts, db.durable()
}

// natStage streams the batches of next into temp.nat_stage.
func (db *DB) natStage(ctx context.Context, conn *sql.Conn, t natTable, next func() (directory.NationalBatch, error)) error {
	full, err := conn.PrepareContext(ctx, t.stageInsert(natStageRows))
	if err != nil {
		return fmt.Errorf("sqlite: national import: %w", err)
	}
	defer full.Close()
	one, err := conn.PrepareContext(ctx, t.stageInsert(1))
	if err != nil {
		return fmt.Errorf("sqlite: national import: %w", err)
	}
	defer one.Close()
	var rows [][]any
	width := 1 + len(t.cols) + len(t.extra)
	args := make([]any, 0, natStageRows*width)
	flush := func(final bool) error {
		for len(rows) >= natStageRows || final && len(rows) > 0 {
			n, st := natStageRows, full
			if len(rows) < natStageRows {
				n, st = 1, one
			}
			args = args[:0]
			for _, r := range rows[:n] {
				args = append(args, r...)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("sqlite: national import: staging: %w", err)
			}
			rows = rows[n:]
		}
		return nil
	}
	for {
		b, err := next()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for _, p := range b.People {
			rows = append(rows, natPersonRow(p, make([]any, 0, width)))
		}
		for _, m := range b.Mailboxes {
			rows = append(rows, natMailboxRow(m, make([]any, 0, width)))
		}
		if errors.Is(err, io.EOF) {
			return flush(true)
		}
		if err := flush(false); err != nil {
			return err
		}
	}
}

// natApply applies the staged records to t; see ImportNational.
func natApply(ctx context.Context, tx *sql.Tx, format directory.NationalFormat, t natTable, at time.Time) (directory.NationalCounts, error) {
	var c directory.NationalCounts
	now := dirNanos(at)
	var seq int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO dir_national_imports (format, at) VALUES (?, ?) RETURNING id`,
		string(format), now).Scan(&seq); err != nil {
		return c, fmt.Errorf("sqlite: national import: %w", err)
	}
	exec := func(n *int, q string) error {
		res, err := tx.ExecContext(ctx, q, sql.Named("at", now), sql.Named("seq", seq))
		if err != nil {
			return fmt.Errorf("sqlite: national import: %w", err)
		}
		if n != nil {
			a, err := res.RowsAffected()
			*n = int(a)
			return err
		}
		return nil
	}
	var set, differ, colList, sCols []string
	for _, col := range t.cols {
		set = append(set, col+" = s."+col)
		differ = append(differ, "m."+col+" <> s."+col)
		colList = append(colList, col)
		sCols = append(sCols, "s."+col)
	}
	from := ` FROM temp.nat_stage AS s WHERE m.` + t.key + ` = s.k`
	steps := []struct {
		n *int
		q string
	}{
		{&c.Reopened, `UPDATE ` + t.name + ` AS m SET status = 'active', closed_at = 0, ` + strings.Join(set, ", ") +
			`, changed_at = :at, changed_seq = :seq` + from + ` AND m.status = 'closed'`},
		{&c.Changed, `UPDATE ` + t.name + ` AS m SET ` + strings.Join(set, ", ") +
			`, changed_at = :at, changed_seq = :seq` + from + ` AND m.changed_seq <> :seq AND (` + strings.Join(differ, " OR ") + `)`},
		// The index documents of the records reopened or changed go;
		// those of the records added do not exist yet.
		{nil, `DELETE FROM ` + t.fts + ` WHERE rowid IN (SELECT id FROM ` + t.name + ` WHERE changed_seq = :seq)`},
		{&c.Closed, `UPDATE ` + t.name + ` AS m SET status = 'closed', closed_at = :at WHERE m.status = 'active'
			AND NOT EXISTS (SELECT 1 FROM temp.nat_stage AS s WHERE s.k = m.` + t.key + `)`},
		{&c.Added, `INSERT INTO ` + t.name + ` (` + t.key + `, ` + strings.Join(colList, ", ") +
			`, status, first_seen, changed_at, changed_seq) SELECT s.k, ` + strings.Join(sCols, ", ") +
			`, 'active', :at, :at, :seq FROM temp.nat_stage AS s WHERE NOT EXISTS (SELECT 1 FROM ` + t.name + ` AS m WHERE m.` + t.key + ` = s.k)`},
	}
	if t.name == natPeople.name {
		steps = append(steps, struct {
			n *int
			q string
		}{nil, `INSERT INTO dir_national_people_fts (rowid, mail, last, first, prof, org, city, ids)
			SELECT m.id, '', m.last_name, m.first_name,
				m.profession || ' ' || m.profession_label || ' ' || m.specialty || ' ' || m.specialty_label,
				s.f_org, s.f_city, m.national_id || ' ' || s.f_ids
			FROM dir_national_people AS m JOIN temp.nat_stage AS s ON s.k = m.national_id WHERE m.changed_seq = :seq`},
			// The documents of the addresses of the professionals changed
			// carry their holder's fields: they are rebuilt.
			struct {
				n *int
				q string
			}{nil, `DELETE FROM dir_national_mailboxes_fts WHERE rowid IN (SELECT b.id FROM dir_national_mailboxes AS b
				JOIN dir_national_people AS p ON p.national_id = b.national_id WHERE b.national_id <> '' AND p.changed_seq = :seq)`},
			struct {
				n *int
				q string
			}{nil, natMailboxDocs + ` WHERE m.national_id <> '' AND p.changed_seq = :seq`})
	} else {
		steps = append(steps, struct {
			n *int
			q string
		}{nil, natMailboxDocs + ` WHERE m.changed_seq = :seq`})
	}
	// Whether each professional has an active address, for the searches
	// of professionals without one; only the rows that change are
	// written.
	steps = append(steps, struct {
		n *int
		q string
	}{nil, `UPDATE dir_national_people AS p SET has_address = x.h
		FROM (SELECT q.id AS id, EXISTS (SELECT 1 FROM dir_national_mailboxes AS m WHERE m.national_id = q.national_id
			AND m.national_id <> '' AND m.status = 'active') AS h FROM dir_national_people AS q) AS x
		WHERE p.id = x.id AND p.has_address <> x.h`})
	for _, st := range steps {
		t0 := time.Now()
		if err := exec(st.n, st.q); err != nil {
			return c, err
		}
		natTrace(t0, st.q)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM temp.nat_stage`).Scan(&c.Records); err != nil {
		return c, fmt.Errorf("sqlite: national import: %w", err)
	}
	c.Unchanged = c.Records - c.Added - c.Changed - c.Reopened
	if _, err := tx.ExecContext(ctx, `UPDATE dir_national_imports SET records = ?, added = ?, changed = ?, closed = ?,
		reopened = ?, unchanged = ? WHERE id = ?`, c.Records, c.Added, c.Changed, c.Closed, c.Reopened, c.Unchanged, seq); err != nil {
		return c, fmt.Errorf("sqlite: national import: %w", err)
	}
	return c, nil
}

// natTrace prints how long a step took when CAREPOST_NATTRACE is set
// (the figures of BENCHMARKS.md).
func natTrace(since time.Time, step string) {
	if os.Getenv("CAREPOST_NATTRACE") != "" {
		fmt.Fprintf(os.Stderr, "%8.2fs  %.70s\n", time.Since(since).Seconds(), strings.Join(strings.Fields(step), " "))
	}
}

// natMailboxDocs inserts the index documents of the mailboxes selected by
// the WHERE that follows (m the mailbox, p its holder): the fields of the
// line, completed by the holder's.
const natMailboxDocs = `INSERT INTO dir_national_mailboxes_fts (rowid, mail, last, first, prof, org, city, ids)
	SELECT m.id, m.address, m.last_name, m.first_name,
		m.profession || ' ' || m.profession_label || ' ' || m.specialty || ' ' || m.specialty_label || ' ' ||
			coalesce(p.profession_label || ' ' || p.specialty || ' ' || p.specialty_label, ''),
		m.organisation || ' ' || m.structure_id || ' ' || m.service || ' ' || coalesce(p.organisation, ''),
		m.city || ' ' || m.post_code || ' ' || coalesce(p.city || ' ' || p.post_code, ''),
		m.national_id || ' ' || m.structure_id
	FROM dir_national_mailboxes AS m LEFT JOIN dir_national_people AS p ON m.national_id <> '' AND p.national_id = m.national_id`

// natTokens splits folded text into the tokens of the index's tokenizer
// (unicode61: runs of letters and digits).
func natTokens(s string) []string {
	return strings.FieldsFunc(directory.FoldSearch(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// natPhrase is an FTS5 phrase of tokens whose last is a prefix: "jean
// pie" matches "Jean-Pierre".
func natPhrase(toks []string) string {
	return `"` + strings.Join(toks, " ") + `" *`
}

// natMatch builds the FTS5 query of q's text and field conditions ("" if
// none). Tokens are letters and digits only, so quoting them is enough.
func natMatch(q directory.ListingQuery) string {
	var parts []string
	for _, w := range strings.Fields(q.Text) {
		if toks := natTokens(w); len(toks) > 0 {
			parts = append(parts, natPhrase(toks))
		}
	}
	field := func(col, v string, perWord bool) {
		if v == "" {
			return
		}
		caret := ""
		if q.Prefix {
			caret = "^ "
		}
		if perWord && !q.Prefix {
			for _, w := range strings.Fields(v) {
				if toks := natTokens(w); len(toks) > 0 {
					parts = append(parts, col+" : "+natPhrase(toks))
				}
			}
			return
		}
		if toks := natTokens(v); len(toks) > 0 {
			parts = append(parts, col+" : "+caret+natPhrase(toks))
		}
	}
	field("mail", q.Mail, false)
	field("{last first}", q.Name, true)
	if _, _, ok := natSortRange(q); !ok {
		field("last", q.LastName, false) // else a range of sort_key
	}
	field("first", q.FirstName, false)
	field("prof", q.Profession, true)
	field("org", q.Organisation, true)
	field("city", q.City, true)
	return strings.Join(parts, " AND ")
}

// SearchNational implements directory.NationalStore.
func (db *DB) SearchNational(ctx context.Context, q directory.ListingQuery, offset, limit int) ([]directory.Listing, error) {
	if limit <= 0 {
		return nil, nil
	}
	n := offset + limit
	match := natMatch(q)
	boxes, err := db.natSearchMailboxes(ctx, q, match, n)
	if err != nil {
		return nil, err
	}
	var people []natListing
	if q.People && q.Address == "" && q.Mail == "" && (q.Kind == "" || q.Kind == directory.KindPersonal) {
		if people, err = db.natSearchPeople(ctx, q, match, n); err != nil {
			return nil, err
		}
	}
	out := make([]directory.Listing, 0, min(n, len(boxes)+len(people)))
	i, j := 0, 0
	for len(out) < n && (i < len(boxes) || j < len(people)) {
		if j >= len(people) || i < len(boxes) && boxes[i].key <= people[j].key {
			out = append(out, boxes[i].Listing)
			i++
		} else {
			out = append(out, people[j].Listing)
			j++
		}
	}
	if offset >= len(out) {
		return nil, nil
	}
	return out[offset:], nil
}

// natBroadMatches is the number of matches over which a search walks the
// sort index (testing each record against the matches) instead of
// sorting the matches: sorting the 400,000 matches of "medecin" took
// 0.6 s.
var natBroadMatches = 20000

// natBroad reports whether the full-text query match selects at least
// natBroadMatches records of fts (counting stops there).
func (db *DB) natBroad(ctx context.Context, fts, match string) (bool, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT rowid FROM `+fts+` WHERE `+fts+` MATCH ? LIMIT ?)`,
		match, natBroadMatches).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: national search: %w", err)
	}
	return n >= natBroadMatches, nil
}

// natSortRange is the range of sort keys of q's last-name prefix
// condition (LastName with Prefix), if it has one.
func natSortRange(q directory.ListingQuery) (lo, hi string, ok bool) {
	if !q.Prefix || q.LastName == "" {
		return "", "", false
	}
	lo = directory.FoldSearch(q.LastName)
	if lo == "" || strings.ContainsRune(lo, 0) {
		return "", "", false
	}
	return lo, lo + "\U0010FFFF", true
}

type natListing struct {
	directory.Listing
	key string
}

func (db *DB) natSearchMailboxes(ctx context.Context, q directory.ListingQuery, match string, n int) ([]natListing, error) {
	var where []string
	var args []any
	if match != "" {
		broad, err := db.natBroad(ctx, "dir_national_mailboxes_fts", match)
		if err != nil {
			return nil, err
		}
		if broad {
			// Most records match: walk the sort index and test each
			// record against the matches (gathered once, "+m.id" keeps
			// them from driving the query) until the page is full.
			where = append(where, `+m.id IN (SELECT rowid FROM dir_national_mailboxes_fts WHERE dir_national_mailboxes_fts MATCH ?)`)
		} else {
			where = append(where, `m.id IN (SELECT rowid FROM dir_national_mailboxes_fts WHERE dir_national_mailboxes_fts MATCH ?)`)
		}
		args = append(args, match)
		if broad {
			match = "" // ordered by the walk of the sort index below
		}
	}
	if !q.IncludeInactive {
		where = append(where, `m.status = 'active'`)
	}
	if q.Kind != "" {
		where = append(where, `m.kind = ?`)
		args = append(args, string(q.Kind))
	}
	if q.Address != "" {
		where = append(where, `m.address = ?`)
		args = append(args, strings.ToLower(q.Address))
	}
	if q.NationalID != "" {
		where = append(where, `m.national_id = ?`, `m.national_id <> ''`) // the partial index
		args = append(args, q.NationalID)
	}
	where = append(where, `NOT EXISTS (SELECT 1 FROM dir_entries AS e WHERE e.address = m.address)`)
	order := `m.sort_key`
	if lo, hi, ok := natSortRange(q); ok {
		// "sn=dup*": the sort key starts with the folded last name, so
		// the page is a range of its index, read in order.
		where = append(where, `m.sort_key >= ?`, `m.sort_key < ?`)
		args = append(args, lo, hi)
	} else if match != "" {
		// Sort the matches rather than walk the whole sort index
		// testing each row against them.
		order = `+m.sort_key`
	}
	args = append(args, n)
	// The page's rows are chosen and sorted on the mailbox table alone;
	// only they are then completed with their holder's record.
	rows, err := db.r.QueryContext(ctx, `SELECT m.address, m.kind, m.status, m.national_id, m.first_name, m.last_name,
		CASE WHEN m.profession <> '' THEN m.profession ELSE coalesce(p.profession, '') END,
		CASE WHEN m.profession <> '' THEN m.profession_label ELSE coalesce(p.profession_label, '') END,
		CASE WHEN m.specialty <> '' THEN m.specialty ELSE coalesce(p.specialty, '') END,
		CASE WHEN m.specialty <> '' THEN m.specialty_label ELSE coalesce(p.specialty_label, '') END,
		CASE WHEN m.organisation <> '' THEN m.organisation WHEN coalesce(p.organisation, '') <> '' THEN p.organisation ELSE m.structure_id END,
		CASE WHEN m.city <> '' THEN m.city ELSE coalesce(p.city, '') END,
		m.sort_key
		FROM (SELECT m.id AS id FROM dir_national_mailboxes AS m WHERE `+strings.Join(where, " AND ")+` ORDER BY `+order+` LIMIT ?) AS page
		JOIN dir_national_mailboxes AS m ON m.id = page.id
		LEFT JOIN dir_national_people AS p ON m.national_id <> '' AND p.national_id = m.national_id
		ORDER BY m.sort_key`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: national search: %w", err)
	}
	defer rows.Close()
	var out []natListing
	for rows.Next() {
		var l natListing
		var kind, status string
		if err := rows.Scan(&l.Address, &kind, &status, &l.NationalID, &l.FirstName, &l.LastName, &l.Profession,
			&l.ProfessionName, &l.Specialty, &l.SpecialtyName, &l.Organisation, &l.City, &l.key); err != nil {
			return nil, fmt.Errorf("sqlite: national search: %w", err)
		}
		l.Kind, l.Status = directory.Kind(kind), directory.Status(status)
		out = append(out, l)
	}
	return out, rows.Err()
}

func (db *DB) natSearchPeople(ctx context.Context, q directory.ListingQuery, match string, n int) ([]natListing, error) {
	var where []string
	var args []any
	if match != "" {
		broad, err := db.natBroad(ctx, "dir_national_people_fts", match)
		if err != nil {
			return nil, err
		}
		if broad {
			// Walk the index of the professionals without an address,
			// testing each against the matches.
			where = append(where, `+p.id IN (SELECT rowid FROM dir_national_people_fts WHERE dir_national_people_fts MATCH ?)`)
		} else {
			where = append(where, `p.id IN (SELECT rowid FROM dir_national_people_fts WHERE dir_national_people_fts MATCH ?)`)
		}
		args = append(args, match)
		if broad {
			match = ""
		}
	}
	if !q.IncludeInactive {
		where = append(where, `p.status = 'active'`)
	}
	if q.NationalID != "" {
		where = append(where, `p.national_id = ?`)
		args = append(args, q.NationalID)
	}
	// (The "<> ''" terms let the planner use the partial indexes on
	// national_id.)
	where = append(where, `p.has_address = 0`,
		`NOT EXISTS (SELECT 1 FROM dir_entries AS e WHERE e.national_id = p.national_id AND e.national_id <> '')`)
	order := `p.sort_key`
	if lo, hi, ok := natSortRange(q); ok {
		where = append(where, `p.sort_key >= ?`, `p.sort_key < ?`)
		args = append(args, lo, hi)
	} else if match != "" {
		order = `+p.sort_key`
	}
	args = append(args, n)
	rows, err := db.r.QueryContext(ctx, `SELECT p.national_id, p.status, p.first_name, p.last_name, p.profession,
		p.profession_label, p.specialty, p.specialty_label,
		CASE WHEN p.organisation <> '' THEN p.organisation ELSE p.structure_id END, p.city, p.sort_key
		FROM dir_national_people AS p WHERE `+strings.Join(where, " AND ")+` ORDER BY `+order+` LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: national search: %w", err)
	}
	defer rows.Close()
	var out []natListing
	for rows.Next() {
		var l natListing
		var status string
		if err := rows.Scan(&l.NationalID, &status, &l.FirstName, &l.LastName, &l.Profession, &l.ProfessionName,
			&l.Specialty, &l.SpecialtyName, &l.Organisation, &l.City, &l.key); err != nil {
			return nil, fmt.Errorf("sqlite: national search: %w", err)
		}
		l.Status = directory.Status(status)
		out = append(out, l)
	}
	return out, rows.Err()
}
