#!/usr/bin/env bash
# Checks the AI proxy with the official OpenAI Python SDK: builds persona and the fake
# provider (bench/src/bin/fake-provider.rs), installs `openai` into a temporary venv, starts
# both on free loopback ports with a temporary data dir, and runs scripts/openai_sdk_check.py
# (chat, streaming, usage in streams, tool calls, embeddings, models, error mapping).
# Everything it starts or creates is removed on exit. Exits non-zero on any failure.
#
#   bash scripts/openai-sdk-check.sh
#
# Environment: PYTHON (default python3), OPENAI_PACKAGE (pip requirement, default openai,
# e.g. "openai==1.99.0"); pip's own PIP_* variables (index, proxy) apply.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$SECONDS

PYTHON=${PYTHON:-python3}
OPENAI_PACKAGE=${OPENAI_PACKAGE:-openai}

fail() {
  echo "openai-sdk-check: FAILED: $*" >&2
  exit 1
}
step() { echo "openai-sdk-check: $*"; }
# The working directory is the repository (see the cd above).
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/persona-sdk-check.XXXXXX")
fake_pid=""
server_pid=""
cleanup() {
  local status=$?
  for pid in "$server_pid" "$fake_pid"; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ $status -ne 0 ]]; then
    for log in persona.log fake-provider.log; do
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

step "building persona and fake-provider"
bins=$(build_binaries "$work" persona:persona persona-bench:fake-provider)
persona_bin=$(awk '$1 == "persona" {print $2}' <<<"$bins")
fake_bin=$(awk '$1 == "fake-provider" {print $2}' <<<"$bins")
[[ -x $persona_bin && -x $fake_bin ]] || fail "could not find the built binaries in: $bins"

step "installing $OPENAI_PACKAGE into a temporary venv"
venv_install "$work/venv" "$OPENAI_PACKAGE"
venv_python="$work/venv/bin/python"

# Waits until URL answers 2xx while PID lives; $3 = seconds.
wait_for() {
  local url=$1 pid=$2 name=$3 deadline=$((SECONDS + $4))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited before it was ready"
    ((SECONDS < deadline)) || fail "$name not ready at $url within $4 s"
    sleep 0.1
  done
}

fake_port=$(free_port)
step "starting fake-provider on 127.0.0.1:$fake_port"
"$fake_bin" "127.0.0.1:$fake_port" >"$work/fake-provider.log" 2>&1 &
fake_pid=$!
wait_for "http://127.0.0.1:$fake_port/v1/models" "$fake_pid" fake-provider 20

# Only this script's settings reach the server.
clear_persona_env
server_port=$(free_port)
server="http://127.0.0.1:$server_port"
mkdir -p "$work/run"
step "starting persona on $server"
(
  cd "$work/run"
  export PERSONA_STORAGE__DATA_DIR="$work/data"
  export PERSONA_SERVER__BIND="127.0.0.1:$server_port"
  export PERSONA_LOG__LEVEL=info
  export PERSONA_LOG__FORMAT=json
  export PERSONA_AI__BASE_URL="http://127.0.0.1:$fake_port/v1"
  export PERSONA_AI__API_KEY=x
  export PERSONA_AI__DEFAULT_MODEL=openai/gpt-4o-mini
  export PERSONA_AI__ALLOWED_MODELS='["openai/gpt-4o-mini"]'
  export PERSONA_AI__EMBEDDING_MODELS='["openai/text-embedding-3-small"]'
  export PERSONA_AI__REQUESTS_PER_MINUTE=100000
  export PERSONA_AI__DAILY_TOKEN_BUDGET=100000000
  export PERSONA_AI__MAX_RETRIES=0
  export PERSONA_AUTH__ARGON2_MEMORY_KIB=1024
  export PERSONA_AUTH__ARGON2_ITERATIONS=1
  export PERSONA_RATE_LIMIT__PER_IP_PER_MINUTE=100000
  export PERSONA_RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE=100000
  exec "$persona_bin" serve
) >"$work/persona.log" 2>&1 &
server_pid=$!
wait_for "$server/health/ready" "$server_pid" persona 60

step "running the OpenAI SDK checks"
check_status=0
limit=()
command -v timeout >/dev/null && limit=(timeout 180)
"${limit[@]}" "$venv_python" "$repo/scripts/openai_sdk_check.py" "$server" || check_status=$?
if [[ $check_status -eq 124 ]]; then
  fail "the SDK checks did not finish within 180 s"
elif [[ $check_status -ne 0 ]]; then
  fail "the OpenAI SDK checks failed (exit $check_status)"
fi
step "passed in $((SECONDS - started)) s"
