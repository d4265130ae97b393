// Package delivery is the one path every message takes into the store,
// whoever hands it in: SMTP submission and MX, IMAP APPEND, and later the
// patient portal, and the server's own notifications (Pipeline.Notify).
// A feature adds a stage, a transform, a target or a hook here; it never
// adds a branch in a protocol adapter.
//
//	 SMTP (smtp/)  ─┐
//	 APPEND (imap/) ─┼─▶ policy ─▶ spool ─▶ transforms ─▶ route ─▶ targets ─▶ one commit ─▶ hooks
//	 portal (later) ─┘
//
//	stage       what it does                                         file
//	policy      who may send what: sender, recipients, From:;        pipeline.go, deliver.go,
//	            APPEND: the right to insert into the mailbox         append.go
//	spool       the message received once, re-readable: memory up    spool.go
//	            to Spooler.Memory, then a sealed unlinked file
//	transforms  an ordered chain; each maps a version of the         transform.go
//	            message to versions for subsets of its recipients
//	            (trace fields first; DKIM verification,             dkimverify.go
//	            S/MIME decryption and verification for local        smime.go
//	            mailboxes, S/MIME signing and encryption for other
//	            operators, DKIM signing of what leaves, last);      dkim.go
//	            a version marked Undelivered leaves the chain and   dsn.go
//	            ends as a notification to the sender
//	summary     ENVELOPE/BODYSTRUCTURE of every version, whatever    deliver.go (Options.Summarize)
//	            its size; a structure past the limits is refused
//	route       each recipient to the Target of its route (the       pipeline.go (Transaction.target)
//	            store for local mailboxes; the outbound queue for    outbound.go
//	            other operators of the trust space)
//	targets     AddRcpt / Body / Commit / Abort; targets that        target.go
//	            share the store add their writes to one Batch
//	commit      the Batch in one transaction                         target.go (storage.Store.DeliverAll)
//	            (storage.DeliverAll): every copy and queue entry
//	            or none, durable before the adapter says 250 / OK
//	hooks       after-commit work off the client's wait, retried     hooks.go
//	            (DMP deposit, receipts, notifications)
//
// A message goes through a Transaction in two phases, as maddy's
// DeliveryTarget: Begin → Sender → AddRecipient (each refused on its own)
// → Deliver, which returns nil only once every copy is durable, so that
// the adapter may then say "250". APPEND is Pipeline.Append: one call.
//
// Refusals are *Error values whose Kind the adapters map to their codes in
// one function (smtp/errors.go, imap/errors.go); internal failures are
// *Error of kind ErrTemporary with the cause in Reason.
//
// Implementation notes:
//   - The header is read from the spool (bounded by maxHeaderBytes) and
//     checked; the body is never parsed by the policy. Headers of the space
//     (X-MSS-CODECDA, X-MSS-INS, X-MSS-NIL, X-MSS-MES, docs/) and every
//     other field are stored byte for byte: the trace transform only
//     prepends Received: and, on submission, adds a missing Message-ID: or
//     Date: at the end of the header, without copying the body.
//   - A transform that only adds fields returns a Prefix of its input; one
//     that rewrites the body writes a new Staged (Bytes, or a spool of its
//     own for large output).
//   - The after-commit hooks are kept in memory (hooks.go says what that
//     means across a restart).
package delivery
