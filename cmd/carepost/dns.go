package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/carepost/carepost/limit"
	"github.com/carepost/carepost/server"
)

func dnsCommand() *command {
	return &command{name: "dns", summary: "the DNS records an operator publishes for the hosted domains",
		subs: []*command{dnsRecords}}
}

var dnsRecords = &command{name: "records", summary: "print, as zone-file lines, the MX, SRV, CNAME and DKIM records of the hosted domains",
	long: `For each hosted domain (or --domain alone): its MX (the smtp listener,
for other operators), the SRV records with which mail clients find IMAP and
submission (RFC 6186; implicit TLS preferred, RFC 8314 §5.1; a service
that is not offered gets the target "." of RFC 6186 §4, POP3 always), the
autoconfig and autodiscover names and the _autodiscover._tcp SRV record
that lead Thunderbird and Outlook to the documents of the https listener,
and the DKIM TXT records of carepost pki dkim.

The ports are those of the configuration. Lines starting with "; note:"
say where that is not what clients elsewhere reach: a listener on a
loopback address, a port other than the standard one (publish the port
clients reach, or forward the standard port to the listener). The A and
AAAA records of the hostname are yours to publish.`,
	setup: func(fs *flag.FlagSet) runner {
		domain := fs.String("domain", "", "`DOMAIN`: the records of this hosted domain only")
		return withServer(func(e *env, srv *server.Server, _ []string) error {
			domains := srv.Config.Domains
			if *domain != "" {
				d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(*domain), "."))
				if !srv.Dir.IsLocalDomain(d) {
					return fmt.Errorf("%s is not a domain hosted here (the configuration's domains: %s)", *domain, strings.Join(srv.Config.Domains, ", "))
				}
				domains = []string{d}
			}
			return printDNSRecords(e.stdout, srv, domains)
		})
	}}

// standardPorts are the ports clients and other servers use when nothing
// tells them otherwise (RFC 6409, RFC 8314, RFC 9051, RFC 5321; 443 for
// the https documents, which Thunderbird and Outlook ask at
// https://autoconfig.DOMAIN/ and https://autodiscover.DOMAIN/).
var standardPorts = map[string]int{"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993, "https": 443}

// listenerNotes are the "; note:" lines of a listener at addr.
func listenerNotes(name, addr string) []string {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var notes []string
	if limit.IsLoopbackHost(host) {
		notes = append(notes, fmt.Sprintf("; note: listen.%s is %s, a loopback address: no client or server elsewhere reaches it until it listens on a public address", name, addr))
	}
	if port, _ := strconv.Atoi(p); port != standardPorts[name] {
		switch name {
		case "smtp":
			notes = append(notes, fmt.Sprintf("; note: listen.smtp is port %d: other operators' servers reach an MX on port %d only; forward port %d to it", port, standardPorts[name], standardPorts[name]))
		default:
			notes = append(notes, fmt.Sprintf("; note: listen.%s is port %d, not %d: the records below name %d; if a firewall maps %d to it, publish %d instead", name, port, standardPorts[name], port, standardPorts[name], standardPorts[name]))
		}
	}
	return notes
}

// printDNSRecords prints the records of domains.
func printDNSRecords(w io.Writer, srv *server.Server, domains []string) error {
	cfg := srv.Config
	host := strings.TrimSuffix(cfg.Hostname, ".") + "."
	fmt.Fprintf(w, "; DNS records of the domains served by %s (carepost dns records)\n", cfg.Hostname)
	l := cfg.Listen
	for _, ls := range []struct{ name, addr string }{{"smtp", l.SMTP}, {"imaps", l.IMAPS}, {"imap", l.IMAP},
		{"submissions", l.Submissions}, {"submission", l.Submission}, {"https", l.HTTPS}} {
		if ls.addr == "" {
			continue
		}
		for _, n := range listenerNotes(ls.name, ls.addr) {
			fmt.Fprintln(w, n)
		}
	}
	if l.SMTP == "" {
		fmt.Fprintln(w, "; note: listen.smtp is off: no MX record is printed, this server receives no mail from other operators")
	}
	if l.HTTPS == "" {
		fmt.Fprintln(w, "; note: listen.https is off: mail clients find no autoconfiguration document, so no autoconfig or autodiscover record is printed")
	} else {
		fmt.Fprintf(w, "; note: Thunderbird and Outlook check the https certificate against autoconfig.DOMAIN and autodiscover.DOMAIN: the certificate of %s must name them too\n", cfg.Hostname)
	}
	ports := map[string]int{}
	for _, m := range cfg.MailServices() {
		ports[m.Listener] = m.Port
	}
	srvRecord := func(d, service string, prio, port int) {
		if port == 0 {
			// RFC 6186 §4: "." says the service is not offered.
			fmt.Fprintf(w, "_%s._tcp.%s. IN SRV 0 0 0 .\n", service, d)
			return
		}
		fmt.Fprintf(w, "_%s._tcp.%s. IN SRV %d 1 %d %s\n", service, d, prio, port, host)
	}
	for _, d := range domains {
		fmt.Fprintf(w, "\n; %s\n", d)
		if l.SMTP != "" {
			fmt.Fprintf(w, "%s. IN MX 10 %s\n", d, host)
		}
		srvRecord(d, "imaps", 0, ports["imaps"])
		srvRecord(d, "imap", 10, ports["imap"])
		srvRecord(d, "submissions", 0, ports["submissions"])
		srvRecord(d, "submission", 10, ports["submission"])
		srvRecord(d, "pop3s", 0, 0)
		srvRecord(d, "pop3", 0, 0)
		if l.HTTPS != "" {
			if _, p, err := net.SplitHostPort(l.HTTPS); err == nil {
				port, _ := strconv.Atoi(p)
				fmt.Fprintf(w, "autoconfig.%s. IN CNAME %s\n", d, host)
				fmt.Fprintf(w, "autodiscover.%s. IN CNAME %s\n", d, host)
				srvRecord(d, "autodiscover", 0, port)
			}
		}
		if err := printDKIMRecords(w, srv, []string{d}); err != nil {
			return err
		}
	}
	return nil
}
