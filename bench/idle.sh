#!/usr/bin/env bash
# Memory per idle IMAPS connection: a fresh `carepost serve` with one
# professional, N sessions (default 500) logged in, INBOX selected, in
# IDLE (`carepost bench imap --idle N`); the server's RSS before and 5 s
# after the last one is held, and the difference per connection.
#
#   bench/idle.sh BINARY [N=500] [RUNS=3]
#
# Older binaries without [limits] (before 2026-12-07): LIMITS= bench/idle.sh …
set -euo pipefail
bin=$(realpath "${1:?usage: $0 BINARY [N] [RUNS]}")
n=${2:-500}
runs=${3:-3}
limits=${LIMITS-$'[limits]\nconnections_per_address = 100000'}
for run in $(seq "$runs"); do
	d=$(mktemp -d)
	cat > "$d/c.toml" <<TOML
hostname = "localhost"
[listen]
smtp = ""
submission = ""
submissions = ""
imap = ""
imaps = "127.0.0.1:49994"
https = ""
ldap = ""
ldaps = ""
$limits
TOML
	c=(--config "$d/c.toml" --data "$d/data")
	"$bin" init "${c[@]}" >/dev/null 2>&1 || true
	"$bin" dir add-professional "${c[@]}" --id 810001045367 --first I --last Dle --profession 10 --address idle@carepost.test >/dev/null
	echo 'idle password 12' | "$bin" user set-password idle@carepost.test "${c[@]}" >/dev/null
	echo 'idle password 12' > "$d/pass"
	"$bin" pki export ca "${c[@]}" > "$d/ca.pem"
	"$bin" serve "${c[@]}" > "$d/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/49994) 2>/dev/null && break; sleep 0.1; done
	sleep 2
	before=$(ps -o rss= -p $pid)
	"$bin" bench imap --addr 127.0.0.1:49994 --tls --ca "$d/ca.pem" --tls-name localhost --user idle@carepost.test \
		--pass-file "$d/pass" --clients 0 --idle "$n" --duration 120s > "$d/bench" 2>&1 &
	bp=$!
	for _ in $(seq 600); do grep -q "IDLE connections held" "$d/bench" 2>/dev/null && break; sleep 0.2; done
	sleep 5
	after=$(ps -o rss= -p $pid)
	held=$(sed -n 's/.*: \([0-9]*\) IDLE connections held.*/\1/p' "$d/bench" | tail -1)
	kill $bp 2>/dev/null; wait $bp 2>/dev/null || true
	kill $pid; wait $pid 2>/dev/null || true
	echo "run $run: ${held:-0}/$n held; RSS $before -> $after kB: $(awk -v a="$after" -v b="$before" -v n="${held:-1}" 'BEGIN {printf "%.1f KiB", (a - b) / n}') a connection"
	rm -rf "$d"
done
