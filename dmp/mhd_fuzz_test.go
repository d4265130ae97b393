package dmp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// FuzzMHDResponse: whatever the server answers, reading it must not panic,
// and gives either an error or one result per document.
func FuzzMHDResponse(f *testing.F) {
	f.Add(200, []byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created","location":"List/1"}},{"response":{"status":"201 Created","location":"DocumentReference/2/_history/1"}},{"response":{"status":"201 Created","location":"Binary/3"}}]}`))
	f.Add(400, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate","details":{"coding":[{"code":"XDSDuplicateUniqueIdInRegistry"}]},"expression":["Bundle.entry[1].resource.masterIdentifier"]}]}`))
	f.Add(422, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad","location":["Bundle.entry[99999999]"]}]}`))
	f.Add(500, []byte(`oops`))
	f.Add(201, []byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[{},{"response":{"status":"4"}},{"response":{"status":"500","outcome":{"issue":[{}]}}}]}`))
	plan := bundlePlan{entries: 3, docRef: []int{1}, binary: []int{2}}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, err := parseMHDResponse(status, body, plan)
		if err == nil && len(res) != 1 {
			t.Fatalf("%d results for one document", len(res))
		}
		for _, r := range res {
			if !r.deposited && !r.duplicate && !r.retry && r.reason == "" {
				t.Fatalf("a refusal without a reason: %+v", r)
			}
			if len(r.reason) > mhdReasonLimit+len("…") {
				t.Fatalf("reason of %d bytes", len(r.reason))
			}
		}
	})
}

// FuzzWantsReceipt: any header and envelope sender; an MDN goes only to the
// envelope sender.
func FuzzWantsReceipt(f *testing.F) {
	f.Add("Disposition-Notification-To: a@b.test\r\n", "a@b.test")
	f.Add("Disposition-Notification-To: =?utf-8?q?J=C3=A9r=C3=B4me?= <A@B.test>, c@d\r\n", "<a@b.test>")
	f.Add("Disposition-Notification-To: \"x\\\"y\" <@route:a@b.test>\r\n", "")
	f.Fuzz(func(t *testing.T, header, envelope string) {
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader([]byte(header + "\r\n"))))
		if err != nil {
			return
		}
		addr, ok := WantsReceipt(h, envelope)
		if ok && !strings.EqualFold(addr, strings.TrimSpace(strings.Trim(strings.TrimSpace(envelope), "<>"))) {
			t.Fatalf("an MDN to %q for the envelope sender %q", addr, envelope)
		}
		if !ok && addr != "" {
			t.Fatalf("an address %q without a receipt", addr)
		}
	})
}
