// Package ldap serves a read-only LDAPv3 view of the directory (RFC 4511)
// for the address books of mail clients (Thunderbird, Outlook, ldapsearch):
// every listing of directory.SearchListings — the mailboxes hosted here,
// and after the import of issue #27 the national directory's addresses —
// is an inetOrgPerson entry (RFC 2798) mail=ADDRESS,BASE with cn, sn,
// givenName, displayName, mail, uid, title (the profession's and the
// specialty's labels), o, l, employeeNumber (the national identifier,
// also searchable as carepostNationalId), employeeType (PER, ORG, APP,
// CAB) and userCertificate;binary (the mailbox's public S/MIME
// certificates, RFC 4523). Entries on the liste rouge are never listings;
// patients' mailboxes are left out of this view. See README "Address book
// (LDAP)".
//
// # Access
//
// Binds are simple (RFC 4513 §5.1): anonymous (by default only from a
// loopback address: Options.Anonymous), or the mailbox's address (bare,
// or as mail=ADDRESS,… or uid=ADDRESS,…) with its IMAP password, checked
// by the authenticator of IMAP and SMTP AUTH (same limiter of guesses,
// same application passwords and strong-authentication rules); a refusal
// is invalidCredentials (49) with a sentence. SASL is not offered. Every
// write (add, modify, delete, rename) and compare is unwillingToPerform
// (53) with a sentence. The server serves any net.Listener: the server
// package gives it an implicit-TLS one (LDAPS) and a plain one restricted
// to loopback, where StartTLS (RFC 4511 §4.14) is offered.
//
// # Searches
//
// Scopes base, one and sub under the base DN (and sub from above it, or
// from the empty DN); filters and, or, not, equality, substrings,
// presence, approximate (as "contains"), >= and <= (folded string
// order); extensible matches are Undefined. Comparisons fold case and
// accents like the directory's searches. A filter is answered with
// SearchListings queries planned from it (plan.go) and then evaluated on
// each candidate: see plan.go for how and for the limits. A search
// returns at most Options.MaxResults entries (and at most the client's
// size limit), then sizeLimitExceeded (4); the paged-results control (RFC
// 2696) pages within that bound. The client's time limit is not used:
// every search is bounded to 10 seconds here. Aliases do not exist, so
// derefAliases changes nothing. The root DSE gives namingContexts,
// supportedLDAPVersion 3, the extensions (StartTLS on a plain listener,
// "Who am I?", RFC 4532) and the paging control.
//
// Anonymous "loopback" trusts the address the connection comes from: a
// proxy on this machine that forwards remote clients to the plain
// listener makes them all loopback (set anonymous to "never" then).
//
// # Why no LDAP server library
//
// The issue suggested github.com/vjeantet/ldapserver and
// github.com/jimlambrt/gldap. Both were read (v1.0.1 and v0.1.14) and
// neither fits:
//
//   - vjeantet/ldapserver (last release 2019) panics outside any recover
//     when the first byte of a message is not 0x30 (readTagAndLength), so
//     random bytes on the port stop the whole process; its Accept loop
//     dereferences a nil connection when the listener is closed; it
//     ignores short reads (a large message over TLS is misread); it logs
//     every packet in hex, bind passwords included; it only listens by
//     itself (no net.Listener of ours: no connection limits, no TLS
//     listener of the server).
//   - gldap (maintained, recovers panics, StartTLS) also only listens by
//     itself (Run(addr), which resolves the host name), gives a handler
//     no access to the client's address — which the anonymous-on-loopback
//     rule and the guessing limiter need — and reads messages with
//     go-asn1-ber's default limit of 2 GiB, so that six bytes make it
//     allocate that much. It would also bring hclog and golang.org/x/exp.
//
// The protocol part needed here is small (bind, search, unbind,
// StartTLS, refusals), so this package reads and writes the messages
// with go-asn1-ber (the BER codec of github.com/go-ldap/ldap/v3, which
// the tests use as client): each message is framed by hand with a 64 KiB
// bound before it is decoded, filters are at most 16 levels and 256
// items, every session runs under a recover, and FuzzRequest feeds
// random bytes to the decoding.
package ldap
