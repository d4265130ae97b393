package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// A mailbox owner's history (AuditQuery.Account) is read through the
// audit_account index, with or without since and limit, newest first or
// not: never by a scan of the whole trail.
func TestAuditAccountQueryUsesIndex(t *testing.T) {
	db, _, _ := setup(t)
	for _, q := range []storage.AuditQuery{
		{Account: "a@b.test"},
		{Account: "a@b.test", Newest: true, Limit: 101},
		{Account: "a@b.test", Newest: true, Limit: 101, Since: time.Now()},
		{Account: "a@b.test", After: 10, Action: "message.read"},
	} {
		query, args := auditQuery(q)
		rows, err := db.r.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "SEARCH e USING INDEX audit_account") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q", q, p)
		}
	}
}
