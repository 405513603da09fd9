#!/usr/bin/env bash
# Memory of concurrent backup downloads, measured like an operator would: a release binary
# started as a process, one backup of SIZE_MIB random bytes, then CONCURRENCY raw downloads
# at once by curl (each slowed to RATE so they overlap), while /proc/<pid>/status is sampled.
# The upload happens before a restart, so VmHWM at the end is the download phase's peak.
#
#   scripts/backup-download-rss.sh BINARY [SIZE_MIB=64] [CONCURRENCY=4] [RATE=32M] [FORM=raw|json]
#
# Needs curl, jq and sha256sum. Prints one line per phase; nothing is kept afterwards.
set -euo pipefail

bin=$(realpath "${1:?usage: $0 BINARY [SIZE_MIB] [CONCURRENCY] [RATE] [FORM]}")
size_mib=${2:-64}
concurrency=${3:-4}
rate=${4:-32M}
form=${5:-raw}

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

export PERSONA_LOG__FORMAT=json
export PERSONA_BACKUPS__MAX_TRANSFERS=$concurrency
export PERSONA_BACKUPS__MAX_SIZE="$((size_mib + 1))MiB"
export PERSONA_SERVER__REQUEST_TIMEOUT=300s
export PERSONA_AUTH__ARGON2_MEMORY_KIB=1024

start() {
    : >"$work/log"
    (cd "$work" && exec "$bin" serve --bind 127.0.0.1:0 2>>"$work/log" >/dev/null) &
    pid=$!
    for _ in $(seq 200); do
        addr=$(jq -r 'select(.address != null) | .address' "$work/log" 2>/dev/null | head -1)
        [ -n "$addr" ] && return
        sleep 0.05
    done
    echo "the server did not start" >&2
    cat "$work/log" >&2
    exit 1
}

stop() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
}

status() { # field of /proc/<pid>/status, in MiB
    awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
}

start
base=http://$addr/api/v1
token=$(curl -sf "$base/auth/register" -H 'content-type: application/json' \
    -d '{"email":"rss@example.com","password":"password123"}' | jq -r .accessToken)
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/backup.bin"
sum=$(sha256sum "$work/backup.bin" | cut -d' ' -f1)
curl -sf "$base/sync/backup" -H "authorization: Bearer $token" \
    -H 'content-type: application/octet-stream' -H "x-checksum-sha256: $sum" \
    --data-binary @"$work/backup.bin" >/dev/null
rm "$work/backup.bin"
stop

start
base=http://$addr/api/v1
token=$(curl -sf "$base/auth/login" -H 'content-type: application/json' \
    -d '{"email":"rss@example.com","password":"password123"}' | jq -r .accessToken)
echo "binary: $bin"
echo "backup: $size_mib MiB, $concurrency concurrent $form downloads at $rate each"
echo "idle after restart: VmRSS $(status VmRSS) MiB, VmHWM $(status VmHWM) MiB"

accept=application/json
[ "$form" = raw ] && accept=application/octet-stream
clients=()
for i in $(seq "$concurrency"); do
    curl -sf --limit-rate "$rate" "$base/sync/backup/latest" -H "authorization: Bearer $token" \
        -H "accept: $accept" -o "$work/down-$i" &
    clients+=($!)
done
peak=0
running() {
    for c in "${clients[@]}"; do kill -0 "$c" 2>/dev/null && return 0; done
    return 1
}
while running; do
    rss=$(status VmRSS)
    peak=$(awk -v a="$rss" -v b="$peak" 'BEGIN { print (a > b) ? a : b }')
    sleep 0.02
done
wait_ok=0
for i in $(seq "$concurrency"); do
    if [ "$form" = raw ]; then
        got=$(sha256sum "$work/down-$i" | cut -d' ' -f1)
    else
        got=$(jq -r .data "$work/down-$i" | base64 -d | sha256sum | cut -d' ' -f1)
    fi
    [ "$got" = "$sum" ] && wait_ok=$((wait_ok + 1))
done
echo "downloads intact: $wait_ok/$concurrency"
echo "during downloads: peak sampled VmRSS $peak MiB; VmHWM $(status VmHWM) MiB"
