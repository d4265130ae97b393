#!/bin/sh
# The national directory's import and search over a million lines
# (issue #27; BENCHMARKS.md, "Directory import and search (#27)").
#
#   sh bench/natdir.sh [LINES] [WORKDIR]
#
# Generates the synthetic extractions with bench/natgen, imports them into
# a fresh data directory (PS_LibreAcces, MSSanté, both again unchanged,
# then a PS file where 5 % of the professionals left and 5 % arrived),
# printing for each the summary, wall time, CPU time and peak RSS
# (/usr/bin/time -v) and the time of each step (CAREPOST_NATTRACE), then
# measures the search latencies over the result (p50, p99).
set -e
N=${1:-1000000}
W=${2:-/tmp/natdir-bench}
mkdir -p "$W"
go build -o "$W/carepost" ./cmd/carepost
go run ./bench/natgen -format ps-libreacces -n "$N" > "$W/ps.txt"
go run ./bench/natgen -format mssante -n "$N" > "$W/mss.txt"
# The same professionals but the first 5 % gone and as many new ones.
go run ./bench/natgen -format ps-libreacces -n "$N" -start $((N / 20)) > "$W/ps2.txt"
D="$W/data"
rm -rf "$D"
"$W/carepost" --data "$D" init > /dev/null
for step in ps-libreacces:ps.txt mssante:mss.txt ps-libreacces:ps.txt mssante:mss.txt ps-libreacces:ps2.txt; do
	format=${step%%:*}
	file=$W/${step#*:}
	echo "== dir import --format $format $file ($(uptime | sed 's/.*load/load/'))"
	CAREPOST_NATTRACE=1 /usr/bin/time -v "$W/carepost" --data "$D" dir import --format "$format" "$file" 2>&1 |
		grep -E 'imported|added|Elapsed|Maximum resident|User time|System time|^ +[0-9.]+s  '
done
CAREPOST_NATBENCH_DATA="$D" go test ./directory -run NationalSearchLatency -count=1 -v | grep -E 'results|ok'
