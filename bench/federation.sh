#!/usr/bin/env bash
# Operator-to-operator transfer (issues 23, 24): two Carepost servers on this
# machine, A (a.test) and B (b.test), each with its own data directory and
# development CA, trusting each other (`carepost trust add-domain|add-ca`),
# A routed to B's MX listener. Each round, alternating:
#   - local: `carepost bench smtp` at A (10 KB, 16 clients, implicit TLS)
#     to a mailbox of A: the durable submission figure;
#   - federated S/MIME on and off (in turn, alternating which goes first):
#     the same load at A to a mailbox of B, accepted at A (the message is
#     in A's queue on disk), then delivered to B over mutual TLS with
#     DKIM; timed until B's INBOX holds every message (IMAP STATUS), from
#     the first submission. Two pairs of servers run side by side, one
#     with the S/MIME gateway (signed by A with the sender's certificate,
#     encrypted to the recipient's, fetched from B's https listener;
#     decrypted and verified by B: docs/smime.md), one without;
# then the ceiling (tools/peers/ceiling: smtp-source to smtp-sink, nothing
# stored) once. Prints each run and the medians.
#
#   bench/federation.sh [rounds=3] [messages=4000]
set -euo pipefail
rounds=${1:-3}
n=${2:-4000}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$here"
go build -o "$work/carepost" ./cmd/carepost
cp="$work/carepost"

# pair NAME GATEWAY A B: operators A (a.test) and B (b.test) in
# $work/NAME-a and $work/NAME-b, on ports A*** and B*** (smtp ..025,
# submissions ..465, imaps ..993, https ..443), the S/MIME gateway on or
# off on both; with it, each publishes its certificates on https and finds
# the other's there ([smime.endpoints]).
pair() {
	local name=$1 gateway=$2 pa=$3 pb=$4 op me peer other
	for op in a b; do
		if [ $op = a ]; then me=$pa peer=$pb other=b; else me=$pb peer=$pa other=a; fi
		cat > "$work/$name-$op.toml" <<TOML
data = "$work/$name-$op"
hostname = "localhost"
domains = ["$op.test"]
patient_domain = ""
[listen]
smtp = "127.0.0.1:${me}025"
submission = ""
submissions = "127.0.0.1:${me}465"
imap = ""
imaps = "127.0.0.1:${me}993"
https = "127.0.0.1:${me}443"
ldap = ""
ldaps = ""
[trust]
dkim_lookup = "config"
[routes]
"$other.test" = "127.0.0.1:${peer}025"
[smime]
gateway = $gateway
[smime.endpoints]
"$other.test" = "https://localhost:${peer}443"
TOML
		c=(--config "$work/$name-$op.toml")
		"$cp" init "${c[@]}" >/dev/null 2>&1
		"$cp" dir add-professional "${c[@]}" --id 810001045367 --first S --last Ender --profession 10 --address "sender@$op.test" >/dev/null
		"$cp" dir add-professional "${c[@]}" --id 0012600631 --first R --last Cpt --profession 10 --address "rcpt@$op.test" >/dev/null
		echo 'bench password 1' | "$cp" user set-password "sender@$op.test" "${c[@]}" >/dev/null
		echo 'bench password 1' | "$cp" user set-password "rcpt@$op.test" "${c[@]}" >/dev/null
	done
	"$cp" trust add-domain b.test --config "$work/$name-a.toml" >/dev/null
	"$cp" trust add-ca "$work/$name-b/pki/ca.crt" --config "$work/$name-a.toml" >/dev/null
	"$cp" trust add-domain a.test --config "$work/$name-b.toml" >/dev/null
	"$cp" trust add-ca "$work/$name-a/pki/ca.crt" --config "$work/$name-b.toml" >/dev/null
	"$cp" serve --config "$work/$name-a.toml" >"$work/$name-a.log" 2>&1 &
	"$cp" serve --config "$work/$name-b.toml" >"$work/$name-b.log" 2>&1 &
	for port in ${pa}465 ${pb}993 ${pb}025 ${pb}443; do
		for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
	done
}
# The two pairs run side by side; each round measures one after the other.
pair on true 36 37
pair off false 38 39

# await ACCOUNT PORT CA COUNT: returns once the INBOX holds COUNT messages
# (IMAP STATUS every 0.1 s over one TLS session: one login, not one a poll).
await() {
	python3 - "$@" <<'PY'
import imaplib, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[3])
with imaplib.IMAP4_SSL("localhost", int(sys.argv[2]), ssl_context=ctx) as m:
    m.login(sys.argv[1], "bench password 1")
    deadline = time.time() + 600
    while time.time() < deadline:
        typ, data = m.status("INBOX", "(MESSAGES)")
        if int(data[0].decode().split("MESSAGES ")[1].rstrip(")")) >= int(sys.argv[4]):
            sys.exit(0)
        time.sleep(0.1)
sys.exit("B did not receive every message within 10 minutes")
PY
}

submit() { # submit PAIR RCPT: prints msg/s accepted at the pair's A
	local port=36465
	[ "$1" = off ] && port=38465
	"$cp" bench smtp --addr 127.0.0.1:$port --tls --ca "$work/$1-a/pki/ca.crt" --tls-name localhost \
		--user sender@a.test --pass 'bench password 1' --from sender@a.test --to "$2" \
		--clients 16 --messages "$n" --size 10240 --quiet | sed -n 's/.* \([0-9.]*\) msg\/s.*/\1/p' | head -1
}

# federated PAIR ROUND: the load from A to B of the pair, accepted at A and
# timed until B's INBOX holds every message.
declare -A res delivered=([on]=0 [off]=0)
federated() {
	local p=$1 port=37993 label="S/MIME on" start end accepted e2e
	[ "$p" = off ] && port=39993 label="S/MIME off"
	start=$(date +%s.%N)
	accepted=$(submit "$p" rcpt@b.test)
	delivered[$p]=$((${delivered[$p]} + n))
	await rcpt@b.test $port "$work/$p-b/pki/ca.crt" "${delivered[$p]}"
	end=$(date +%s.%N)
	e2e=$(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", n / (b - a)}')
	echo "round $2 federated $label: $accepted msg/s accepted at A, $e2e msg/s in B's mailbox (end to end)"
	res[accepted-$p]+="$accepted "
	res[e2e-$p]+="$e2e "
}

for i in $(seq "$rounds"); do
	local_rate=$(submit on rcpt@a.test)
	echo "round $i local: $local_rate msg/s (durable at A)"
	res[local]+="$local_rate "
	# Alternate which goes first, so that neither always follows the other.
	if [ $((i % 2)) = 1 ]; then federated on "$i"; federated off "$i"; else federated off "$i"; federated on "$i"; fi
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ceiling=$("$here/tools/peers/ceiling" 2>/dev/null | sed -n 's/^ceiling: *//p' | tail -1) || ceiling="(not measured)"
echo
echo "local submission at A: ${res[local]}(median $(echo "${res[local]}" | median) msg/s)"
for p in on off; do
	echo "federated S/MIME $p, accepted at A: ${res[accepted-$p]}(median $(echo "${res[accepted-$p]}" | median) msg/s)"
	echo "federated S/MIME $p, in B's mailbox: ${res[e2e-$p]}(median $(echo "${res[e2e-$p]}" | median) msg/s)"
done
echo "ceiling (smtp-source to smtp-sink): $ceiling"
# What B's last message says, so that "on" was S/MIME indeed (smime=pass)
# and "off" was not (no verdict: B's gateway is off too).
verdict() {
	python3 - "$@" <<'PY'
import imaplib, re, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with imaplib.IMAP4_SSL("localhost", int(sys.argv[1]), ssl_context=ctx) as m:
    m.login("rcpt@b.test", "bench password 1")
    m.select("INBOX", readonly=True)
    _, data = m.fetch("*", "(BODY.PEEK[HEADER])")
    v = re.search(rb"smime=[a-z]+", data[0][1])
    print(v.group().decode() if v else "no smime verdict")
PY
}
echo "S/MIME on, B's last message: $(verdict 37993 "$work/on-b/pki/ca.crt")"
echo "S/MIME off, B's last message: $(verdict 39993 "$work/off-b/pki/ca.crt")"
for p in on off; do
	grep -c "outbound message delivered" "$work/$p-a.log" | sed "s/^/A (S\/MIME $p) delivered (log lines): /"
done
if grep -qE '^panic:|level=ERROR' "$work"/*.log; then
	echo "errors in the logs:"; grep -hE '^panic:|level=ERROR' "$work"/*.log | head -5
fi
