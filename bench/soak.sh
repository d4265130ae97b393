#!/usr/bin/env bash
# Soak test (issue 21): a fresh Carepost under mixed load for a while —
# durable submission (`carepost bench smtp`, 16 clients, 10 KB, TLS) and
# imaptest's stress profile (100 users, 10 clients, TLS) at once, with a
# client flooding bad input beside them (bench/flood.py). Then checks:
#   - the resident size is flat after the warm-up: the median of the last
#     third of the samples within TOLERANCE % (default 10) of the median of
#     the middle third (the first third is the warm-up);
#   - imaptest reported no error;
#   - the server logged no panic and no line at level ERROR.
# Prints the samples and exits non-zero when a check fails.
#
#   bench/soak.sh [SECONDS=1800] [TOLERANCE=10]
# TOLERANCE "off" reports the resident size without judging it: CI runs a
# few minutes, too short for a warm-up (the store grows, the caches fill),
# and checks the rest.
set -euo pipefail
secs=${1:-1800}
tolerance=${2:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
stress="$here/tools/imaptest/stress"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$here"
go build -o "$work/carepost" ./cmd/carepost
cp="$work/carepost"
cat > "$work/carepost.toml" <<TOML
hostname = "localhost"
[listen]
smtp = ""
submission = ""
submissions = "127.0.0.1:44465"
imap = ""
imaps = "127.0.0.1:49993"
https = ""
ldap = ""
ldaps = ""
[debug]
pprof = "127.0.0.1:46060"
TOML
c=(--config "$work/carepost.toml" --data "$work/data")
"$cp" init "${c[@]}" >/dev/null
"$cp" dir add-professional "${c[@]}" --id 810001045367 --first S --last Ender --profession 10 --address sender@carepost.test >/dev/null
"$cp" dir add-professional "${c[@]}" --id 0012600631 --first R --last Cpt --profession 10 --address rcpt@carepost.test >/dev/null
"$cp" dir add-professional "${c[@]}" --id 810000000017 --first F --last Lood --profession 10 --address flood@carepost.test >/dev/null
echo 'sender password 1' | "$cp" user set-password sender@carepost.test "${c[@]}" >/dev/null
echo 'flood password 12' | "$cp" user set-password flood@carepost.test "${c[@]}" >/dev/null
"$cp" bench users "${c[@]}" --count 100 --password 'stress password' >/dev/null
"$cp" pki export ca "${c[@]}" > "$work/ca.pem"
"$cp" serve "${c[@]}" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/49993) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/44465) 2>/dev/null && break
	sleep 0.1
done
end=$((SECONDS + secs))

# The loads, each until the end.
(
	while [ $SECONDS -lt $end ]; do
		"$cp" bench smtp --addr 127.0.0.1:44465 --tls --ca "$work/ca.pem" --tls-name localhost \
			--user sender@carepost.test --pass 'sender password 1' --from sender@carepost.test \
			--to rcpt@carepost.test --clients 16 --messages 2000 --size 10240 --quiet || echo "bench smtp failed"
	done
) >"$work/smtp.out" 2>&1 &
(
	while [ $((SECONDS + 40)) -lt $end ]; do
		"$stress" --port 49993 --tls --ca "$work/ca.pem" --pass 'stress password' \
			--user-format 'user%d@carepost.test' || echo "stress failed"
	done
) >"$work/imaptest.out" 2>&1 &
python3 bench/flood.py 127.0.0.1 49993 44465 "$work/ca.pem" flood@carepost.test 'flood password 12' "$secs" >"$work/flood.out" 2>&1 &

# Heap profiles at the end of each third go to $SOAK_PROFILES, if set
# (go tool pprof -diff_base heap-1.pb.gz heap-3.pb.gz tells what grew).
profile() {
	[ -n "${SOAK_PROFILES:-}" ] || return 0
	mkdir -p "$SOAK_PROFILES"
	curl -s -o "$SOAK_PROFILES/heap-$1.pb.gz" "http://127.0.0.1:46060/debug/pprof/heap?gc=1" || true
}
# The resident size, every thirtieth of the run (at least every 5 s).
every=$(( secs / 30 > 5 ? secs / 30 : 5 ))
samples=()
while [ $SECONDS -lt $end ]; do
	sleep "$every"
	samples+=("$(ps -o rss= -p "$pid" | tr -d ' ')")
	case ${#samples[@]} in 10) profile 1 ;; 20) profile 2 ;; 29) profile 3 ;; esac
	echo "t+$((secs - (end - SECONDS)))s rss ${samples[-1]} kB"
done
wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null || true
kill "$pid"; wait "$pid" 2>/dev/null || true

fail=0
n=${#samples[@]} third=$(( ${#samples[@]} / 3 ))
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
middle=$(echo "${samples[@]:$third:$third}" | median)
last=$(echo "${samples[@]:$((n - third))}" | median)
echo "resident size: median ${middle} kB after the warm-up, ${last} kB over the last third"
if [ "$tolerance" != off ] && [ $(( last * 100 )) -gt $(( middle * (100 + tolerance) )) ]; then
	echo "FAIL: the resident size grew by more than ${tolerance} % after the warm-up"; fail=1
fi
runs=$(grep -c '^cmds/s' "$work/imaptest.out" || true)
errs=$(awk '/^imaptest errors:/ {s += $3} END {print s + 0}' "$work/imaptest.out")
echo "imaptest: $runs runs, $errs errors ($(grep '^cmds/s' "$work/imaptest.out" | tr '\n' ' '))"
grep -q 'stress failed' "$work/imaptest.out" && { echo "FAIL: an imaptest run failed"; tail -20 "$work/imaptest.out"; fail=1; }
[ "$errs" -eq 0 ] || { echo "FAIL: imaptest reported errors"; grep -A5 '^imaptest errors' "$work/imaptest.out" | head -20; fail=1; }
echo "submission: $(grep -c 'msg/s' "$work/smtp.out" || true) runs; $(grep 'msg/s' "$work/smtp.out" | tail -1)"
grep -q 'bench smtp failed' "$work/smtp.out" && { echo "FAIL: a submission run failed"; tail -5 "$work/smtp.out"; fail=1; }
cat "$work/flood.out"
# A panic: the runtime's (at the start of a line) or one that go-imap or
# go-smtp recovered and logged (msg="panic …"); not the word inside a
# random transaction ID.
badlines='^panic:|^fatal error:|msg="?panic[ :]|level=ERROR'
bad=$(grep -cE "$badlines" "$work/serve.log" || true)
if [ "$bad" -gt 0 ]; then
	echo "FAIL: $bad panic or error lines in the server's log:"; grep -E "$badlines" "$work/serve.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -10; fail=1
fi
[ $fail -eq 0 ] && echo "soak: passed"
exit $fail
