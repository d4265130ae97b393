#!/usr/bin/env bash
# Operator-to-operator transfer (issue 23): two Carepost servers on this
# machine, A (a.test) and B (b.test), each with its own data directory and
# development CA, trusting each other (`carepost trust add-domain|add-ca`),
# A routed to B's MX listener. Each round, alternating:
#   - local: `carepost bench smtp` at A (10 KB, 16 clients, implicit TLS)
#     to a mailbox of A: the durable submission figure;
#   - federated: the same load at A to a mailbox of B: accepted at A (the
#     message is in A's queue on disk), then delivered to B over mutual
#     TLS with DKIM; timed until B's INBOX holds every message (IMAP
#     STATUS), from the first submission;
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

for op in a b; do
	if [ $op = a ]; then me=36 peer=37 other=b; else me=37 peer=36 other=a; fi
	cat > "$work/$op.toml" <<TOML
data = "$work/$op"
hostname = "localhost"
domains = ["$op.test"]
patient_domain = ""
[listen]
smtp = "127.0.0.1:${me}025"
submission = ""
submissions = "127.0.0.1:${me}465"
imap = ""
imaps = "127.0.0.1:${me}993"
https = ""
[trust]
dkim_lookup = "config"
[routes]
"$other.test" = "127.0.0.1:${peer}025"
TOML
	c=(--config "$work/$op.toml")
	"$cp" init "${c[@]}" >/dev/null 2>&1
	"$cp" dir add-professional "${c[@]}" --id 810001045367 --first S --last Ender --profession 10 --address "sender@$op.test" >/dev/null
	"$cp" dir add-professional "${c[@]}" --id 0012600631 --first R --last Cpt --profession 10 --address "rcpt@$op.test" >/dev/null
	echo 'bench password 1' | "$cp" user set-password "sender@$op.test" "${c[@]}" >/dev/null
	echo 'bench password 1' | "$cp" user set-password "rcpt@$op.test" "${c[@]}" >/dev/null
done
"$cp" trust add-domain b.test --config "$work/a.toml" >/dev/null
"$cp" trust add-ca "$work/b/pki/ca.crt" --config "$work/a.toml" >/dev/null
"$cp" trust add-domain a.test --config "$work/b.toml" >/dev/null
"$cp" trust add-ca "$work/a/pki/ca.crt" --config "$work/b.toml" >/dev/null
"$cp" serve --config "$work/a.toml" >"$work/a.log" 2>&1 &
"$cp" serve --config "$work/b.toml" >"$work/b.log" 2>&1 &
for port in 36465 37993 37025; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

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

submit() { # submit RCPT: prints msg/s accepted at A
	"$cp" bench smtp --addr 127.0.0.1:36465 --tls --ca "$work/a/pki/ca.crt" --tls-name localhost \
		--user sender@a.test --pass 'bench password 1' --from sender@a.test --to "$1" \
		--clients 16 --messages "$n" --size 10240 --quiet | sed -n 's/.* \([0-9.]*\) msg\/s.*/\1/p' | head -1
}

declare -A res
delivered=0
for i in $(seq "$rounds"); do
	local_rate=$(submit rcpt@a.test)
	echo "round $i local: $local_rate msg/s (durable at A)"
	res[local]+="$local_rate "
	start=$(date +%s.%N)
	accepted=$(submit rcpt@b.test)
	delivered=$((delivered + n))
	await rcpt@b.test 37993 "$work/b/pki/ca.crt" "$delivered"
	end=$(date +%s.%N)
	e2e=$(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", n / (b - a)}')
	echo "round $i federated: $accepted msg/s accepted at A, $e2e msg/s in B's mailbox (end to end)"
	res[accepted]+="$accepted "
	res[e2e]+="$e2e "
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ceiling=$("$here/tools/peers/ceiling" 2>/dev/null | sed -n 's/^ceiling: *//p' | tail -1) || ceiling="(not measured)"
echo
echo "local submission at A: ${res[local]}(median $(echo "${res[local]}" | median) msg/s)"
echo "federated, accepted at A: ${res[accepted]}(median $(echo "${res[accepted]}" | median) msg/s)"
echo "federated, in B's mailbox: ${res[e2e]}(median $(echo "${res[e2e]}" | median) msg/s)"
echo "ceiling (smtp-source to smtp-sink): $ceiling"
grep -c "outbound message delivered" "$work/a.log" | sed 's/^/A delivered (log lines): /'
if grep -qE '^panic:|level=ERROR' "$work/a.log" "$work/b.log"; then
	echo "errors in the logs:"; grep -hE '^panic:|level=ERROR' "$work/a.log" "$work/b.log" | head -5
fi
