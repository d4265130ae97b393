#!/usr/bin/env bash
# A/B comparison of two carepost binaries on this machine, alternating
# runs so that the machine's drift touches both alike:
#   - durable submission: `carepost bench smtp`, 10 KB messages, 16
#     clients, implicit TLS (port 465 style), on a fresh data directory;
#   - imaptest's stress profile (tools/imaptest/stress, 100
#     users, 10 clients, 30 s, TLS), --logout0 and/or default.
# Prints each run (throughput, and the server's CPU time per message or
# per imaptest command from /proc, which a busy machine disturbs less than
# the throughput) and the medians. Used for the "no slower" checks of the
# issues that reshape the core (BENCHMARKS.md).
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [rounds=3] [profiles="smtp logout0"]
#
# AB_DOVECOT=1 runs Dovecot (tools/peers/postfix-dovecot, IMAPS on 20993,
# users user%d@bench.test) in each round of the imaptest profiles too,
# between the two, so that the three share the machine's drift.
#
# AB_OLD_EXTRA and AB_NEW_EXTRA are TOML lines appended to each side's
# configuration, so that one binary can be compared with itself under two
# settings, e.g. the audit trail off (old) and on (new):
#   AB_OLD_EXTRA=$'[audit]\nenabled = false' bench/ab.sh /tmp/carepost-new /tmp/carepost-new
# (they come after [listen]: start them with a [section] header).
#
# Build the binaries first, e.g.:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/carepost-old ./cmd/carepost)
#   go build -o /tmp/carepost-new ./cmd/carepost
set -euo pipefail
old=${1:?usage: $0 OLD_BINARY NEW_BINARY [rounds] [profiles]}
new=${2:?usage: $0 OLD_BINARY NEW_BINARY [rounds] [profiles]}
rounds=${3:-3}
profiles=${4:-smtp logout0}
here=$(cd "$(dirname "$0")/.." && pwd)
stress="$here/tools/imaptest/stress"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/carepost.toml" <<TOML
hostname = "localhost"
[listen]
smtp = ""
submission = ""
submissions = "127.0.0.1:34465"
imap = ""
imaps = "127.0.0.1:39993"
https = ""
TOML
for label in old new; do
	cp "$work/carepost.toml" "$work/carepost-$label.toml"
done
# A binary that knows the LDAP listeners (issue 27) has them off too; an
# older one refuses the keys.
for label in old new; do
	bin=$old; [ "$label" = new ] && bin=$new
	if strings "$bin" | grep -c 'listen.ldaps' >/dev/null; then
		sed -i 's/^https = ""$/https = ""\nldap = ""\nldaps = ""/' "$work/carepost-$label.toml"
	fi
done
printf '%s\n' "${AB_OLD_EXTRA:-}" >>"$work/carepost-old.toml"
printf '%s\n' "${AB_NEW_EXTRA:-}" >>"$work/carepost-new.toml"

# setup BIN DIR LABEL: a data directory with a sender, a recipient and
# 100 stress users, made by BIN itself (its schema), with LABEL's
# configuration.
setup() {
	local bin=$1 dir=$2 c=(--config "$work/carepost-$3.toml" --data "$2")
	# Only init and serve create a data directory (issue 22); a binary
	# from before init creates it at its first command instead.
	"$bin" init "${c[@]}" >/dev/null 2>&1 || true
	"$bin" dir add-professional "${c[@]}" --id 810001045367 --first S --last Ender --profession 10 --address sender@carepost.test >/dev/null
	"$bin" dir add-professional "${c[@]}" --id 0012600631 --first R --last Cpt --profession 10 --address rcpt@carepost.test >/dev/null
	echo 'sender password 1' | "$bin" user set-password sender@carepost.test "${c[@]}" >/dev/null
	"$bin" bench users "${c[@]}" --count 100 --password 'stress password' >/dev/null
	"$bin" pki export ca "${c[@]}" > "$dir/ca.pem"
}

# serve BIN DIR LABEL: starts the server with LABEL's configuration,
# waits for its ports.
serve() {
	"$1" serve --config "$work/carepost-$3.toml" --data "$2" >"$2.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/39993) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/34465) 2>/dev/null && return
		sleep 0.1
	done
	echo "server did not start: $(tail -5 "$2.log")" >&2
	exit 1
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

declare -A results cpu
hz=$(getconf CLK_TCK)
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for label in old new; do
	bin=$old
	[ "$label" = new ] && bin=$new
	setup "$bin" "$work/template-$label" "$label"
	# Prefill the stress users' INBOXes once (100 messages each), so that
	# every run starts from the same copy.
	if [[ " $profiles " == *" logout0 "* || " $profiles " == *" default "* ]]; then
		serve "$bin" "$work/template-$label" "$label"
		"$stress" --port 39993 --tls --ca "$work/template-$label/ca.pem" --pass 'stress password' \
			--user-format 'user%d@carepost.test' --logout0 >/dev/null 2>&1 || true
		stop
	fi
done

if [ -n "${AB_DOVECOT:-}" ]; then
	peers="$here/tools/peers"
	"$peers/postfix-dovecot" start >"$work/dovecot-start.log" 2>&1 || { tail -20 "$work/dovecot-start.log"; exit 1; }
	dovecot_ca="${PEERS_HOME:-$HOME/.cache/carepost-peers}/tls/ca.crt"
	"$stress" --port 20993 --tls --ca "$dovecot_ca" --pass pass --user-format 'user%d@bench.test' --logout0 >/dev/null 2>&1 || true
	trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; "$peers/postfix-dovecot" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
fi

dovecot() { # dovecot PROFILE: one imaptest run against Dovecot
	local flag=() r
	[ "$1" = logout0 ] && flag=(--logout0)
	r=$("$stress" --port 20993 --tls --ca "$dovecot_ca" --pass pass --user-format 'user%d@bench.test' \
		--no-prefill "${flag[@]}" 2>/dev/null | sed -n 's/^cmds\/s: *//p' | tail -1)
	echo "$1 dovecot $r"
	results[$1-dovecot]+="$r "
}

run() { # run LABEL BIN PROFILE
	local label=$1 bin=$2 profile=$3 dir="$work/run-$1"
	rm -rf "$dir" "$dir.log"
	cp -a "$work/template-$label" "$dir"
	serve "$bin" "$dir" "$label"
	local r c0 c1 per
	c0=$(cputicks "$pid")
	case $profile in
	smtp)
		r=$("$new" bench smtp --addr 127.0.0.1:34465 --tls --ca "$dir/ca.pem" --tls-name localhost \
			--user sender@carepost.test --pass 'sender password 1' --from sender@carepost.test \
			--to rcpt@carepost.test --clients 16 --messages 6000 --size 10240 --quiet |
			sed -n 's/.* \([0-9.]*\) msg\/s.*/\1/p' | head -1) ;;
	logout0 | default)
		local flag=()
		[ "$profile" = logout0 ] && flag=(--logout0)
		r=$("$stress" --port 39993 --tls --ca "$dir/ca.pem" --pass 'stress password' \
			--user-format 'user%d@carepost.test' --no-prefill "${flag[@]}" 2>/dev/null |
			sed -n 's/^cmds\/s: *//p' | tail -1) ;;
	esac
	c1=$(cputicks "$pid")
	stop
	# CPU per unit of work: ms a message (6000 sent), µs a command (imaptest's
	# cmds/s over its 30 s).
	case $profile in
	smtp) per=$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.3f", t * 1000 / hz / 6000}') ;;
	*) per=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v r="${r:-0}" 'BEGIN {printf "%.0f", (r > 0 ? t * 1e6 / hz / (r * 30) : 0)}') ;;
	esac
	echo "$profile $label $r (server CPU $per $([ "$profile" = smtp ] && echo ms/msg || echo µs/cmd))"
	results[$profile-$label]+="$r "
	cpu[$profile-$label]+="$per "
}

for profile in $profiles; do
	for i in $(seq "$rounds"); do
		peer=:
		[ -n "${AB_DOVECOT:-}" ] && [ "$profile" != smtp ] && peer=dovecot
		if [ $((i % 2)) = 1 ]; then
			run old "$old" "$profile"; $peer "$profile"; run new "$new" "$profile"
		else
			run new "$new" "$profile"; $peer "$profile"; run old "$old" "$profile"
		fi
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
for profile in $profiles; do
	o=$(echo "${results[$profile-old]}" | median)
	n=$(echo "${results[$profile-new]}" | median)
	echo "$profile: old ${results[$profile-old]}(median $o)  new ${results[$profile-new]}(median $n)  new/old $(awk -v a="$n" -v b="$o" 'BEGIN {printf "%.3f", a/b}')"
	oc=$(echo "${cpu[$profile-old]}" | median)
	nc=$(echo "${cpu[$profile-new]}" | median)
	echo "$profile: server CPU per unit old ${cpu[$profile-old]}(median $oc)  new ${cpu[$profile-new]}(median $nc)  new/old $(awk -v a="$nc" -v b="$oc" 'BEGIN {printf "%.3f", a/b}')"
	if [ -n "${results[$profile-dovecot]:-}" ]; then
		d=$(echo "${results[$profile-dovecot]}" | median)
		echo "$profile: dovecot ${results[$profile-dovecot]}(median $d)  new/dovecot $(awk -v a="$n" -v b="$d" 'BEGIN {printf "%.3f", a/b}')  old/dovecot $(awk -v a="$o" -v b="$d" 'BEGIN {printf "%.3f", a/b}')"
	fi
done
