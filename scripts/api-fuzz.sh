#!/usr/bin/env bash
# Fuzzes the HTTP API against its own document with Schemathesis (installed from PyPI into a
# temporary venv): persona starts on a free loopback port with a temporary data dir, an admin
# account signs in, and `schemathesis run` generates valid and invalid requests for every
# operation of /api-docs/openapi.json, failing on any 5xx, any status the document does not
# list for the operation, any content type or response body that does not match it.
# Everything it starts or creates is removed on exit. Exits non-zero on any finding; takes
# about three minutes after the build.
#
#   bash scripts/api-fuzz.sh
#
# Environment: PERSONA_BIN (a persona binary to use instead of building the debug one, which
# `cargo test` has mostly built already; its overflow checks also make a wrapped integer a
# finding), PYTHON (default python3), SCHEMATHESIS_PACKAGE (pip requirement, default the
# pinned version below), FUZZ_TIME (seconds for the main run, default 120), FUZZ_SEED (to
# replay a run; Schemathesis prints the seed it used); pip's own PIP_* variables apply.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

PYTHON=${PYTHON:-python3}
# Pinned: the v4 command line and checks differ from v3's, and a new release may add checks.
SCHEMATHESIS_PACKAGE=${SCHEMATHESIS_PACKAGE:-schemathesis==4.32.5}
FUZZ_TIME=${FUZZ_TIME:-120}
EMAIL=fuzz-admin@example.com
PASSWORD=fuzz-password-1

fail() {
  echo "api-fuzz: FAILED: $*" >&2
  exit 1
}
step() { echo "api-fuzz: $*"; }
# The working directory is the repository (see the cd above).
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/persona-api-fuzz.XXXXXX")
server_pid=""
cleanup() {
  local status=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -s $work/persona.log ]]; then
    echo "---- persona's log: errors and panics ----" >&2
    grep -E '"level":"(ERROR|WARN)"' "$work/persona.log" | tail -n 25 >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

persona_bin=$(persona_binary "$work")

step "installing $SCHEMATHESIS_PACKAGE into a temporary venv"
venv_install "$work/venv" "$SCHEMATHESIS_PACKAGE"
schemathesis=$work/venv/bin/schemathesis

# Only this script's settings reach the server (and the CLI, which reads the same ones).
clear_persona_env
port=$(free_port)
server="http://127.0.0.1:$port"
mkdir -p "$work/run"
export PERSONA_STORAGE__DATA_DIR="$work/data"
export PERSONA_SERVER__BIND="127.0.0.1:$port"
export PERSONA_LOG__LEVEL=info
export PERSONA_LOG__FORMAT=json
export PERSONA_AUTH__ARGON2_MEMORY_KIB=1024
export PERSONA_AUTH__ARGON2_ITERATIONS=1
export PERSONA_AUTH__ACCESS_TTL=1h
# The per-IP, login and search limits would answer most of the run with 429 (documented on
# every operation, so not a finding, but nothing behind them would be fuzzed). The limits
# have tests of their own (tests/api/auth_limits.rs, conversations.rs).
export PERSONA_RATE_LIMIT__PER_IP_PER_MINUTE=1000000
export PERSONA_RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE=1000000
export PERSONA_RATE_LIMIT__SEARCH_PER_MINUTE=1000000
# No AI provider: the AI routes check their input, then answer 503 `ai_not_configured`
# (documented); the proxy itself is checked with a real client by openai-sdk-check.sh.

step "starting persona on $server"
(cd "$work/run" && exec "$persona_bin" serve) >"$work/persona.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$server/health/ready" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || fail "persona exited before it was ready"
  ((SECONDS < deadline)) || fail "persona not ready within 60 s"
  sleep 0.1
done

# An admin, so that the admin routes are fuzzed past their role check.
(cd "$work/run" && printf '%s\n' "$PASSWORD" |
  "$persona_bin" admin user create --email "$EMAIL" --admin --password-stdin) \
  >"$work/cli.log" 2>&1 || fail "persona admin user create failed: $(cat "$work/cli.log")"

# A fresh access token (each pass gets its own session).
token() {
  curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"deviceName\":\"fuzz\"}" \
    "$server/api/v1/auth/login" |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])'
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
# With no AI provider the AI routes answer 503 `ai_not_configured` (documented, and what they
# must answer); any other 5xx from them is still a finding.
cat >"$work/schemathesis.toml" <<'EOF_TOML'
[[operations]]
include-path-regex = "^/api/v1/ai/(chat|chat/completions|content|analyze|embeddings|models)$"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
EOF_TOML
seed=()
[[ -n ${FUZZ_SEED:-} ]] && seed=(--seed "$FUZZ_SEED")

# Operations that end the session they are called with: once one succeeds, every later
# request of the pass is 401. They run in a second, short pass with a session of their own.
session_enders='^/api/v1/auth/(logout|logout-all|sessions/\{id\})$'

# Both passes' sessions are opened before any fuzzing: the first pass sends wrong current
# passwords with the admin's token, and after five the per-account backoff answers the
# admin's next login with 429, as it should.
main_token=$(token) || fail "could not sign in"
enders_token=$(token) || fail "could not sign in"

run() {
  local name=$1 seconds=$2 bearer=$3
  shift 3
  step "schemathesis: $name (up to $seconds s)"
  (cd "$work" && "$schemathesis" --config-file "$work/schemathesis.toml" --no-color \
    run "$server/api-docs/openapi.json" \
    --checks "$checks" \
    --workers 2 \
    --max-time "$seconds" \
    --request-timeout 30 \
    --generation-database none \
    --header "Authorization: Bearer $bearer" \
    "${seed[@]}" "$@") || fail "schemathesis found problems in the $name pass (above)"
}

run "every operation but the session enders" "$FUZZ_TIME" "$main_token" \
  --exclude-path-regex "$session_enders"
run "the session enders" 20 "$enders_token" --include-path-regex "$session_enders"

if grep -q '"panic"\|handler panicked' "$work/persona.log"; then
  fail "persona logged a panic"
fi
step "passed in $((SECONDS - started)) s"
