#!/usr/bin/env bash
# Drives the admin console (`/admin`, SPEC 13) in a real headless browser: Debian's
# `chromium` through its `chromedriver` (both installed with apt when missing) and the
# Selenium client (PyPI, in a temporary venv). Starts persona on a free loopback port with a
# temporary data dir, in front of the fake AI provider (bench/src/bin/fake-provider.rs), makes
# an administrator and a user with the CLI and the API, then runs
# scripts/console_browser.py: sign in, read the overview, disable a user and see it refused
# by the API, create and switch a script version, the chart pages, a phone-width screen,
# the keyboard, sign-out and a revoked session. Screenshots are kept in
# target/console-screenshots/ (override with SCREENSHOTS=DIR). Exits non-zero on any failure.
#
#   bash scripts/console-browser.sh
#
# Environment: PYTHON (default python3), SELENIUM_PACKAGE (default "selenium>=4.20,<5"),
# CHROMIUM (default: chromium on PATH), CHROMEDRIVER (default: chromedriver on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$SECONDS

PYTHON=${PYTHON:-python3}
SELENIUM_PACKAGE=${SELENIUM_PACKAGE:-selenium>=4.20,<5}
SCREENSHOTS=${SCREENSHOTS:-$repo/target/console-screenshots}

fail() {
  echo "console-browser: FAILED: $*" >&2
  exit 1
}
step() { echo "console-browser: $*"; }
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

if ! command -v "${CHROMIUM:-chromium}" >/dev/null || ! command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null; then
  step "installing Debian's chromium and chromium-driver"
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >/dev/null || fail "apt-get update failed"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver \
    fonts-dejavu-core >/dev/null || fail "apt-get install chromium chromium-driver failed"
fi
CHROMIUM=$(command -v "${CHROMIUM:-chromium}")
CHROMEDRIVER=$(command -v "${CHROMEDRIVER:-chromedriver}")
export CHROMIUM CHROMEDRIVER
step "browser: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/persona-console.XXXXXX")
server_pid=""
fake_pid=""
cleanup() {
  local status=$?
  for pid in "$server_pid" "$fake_pid"; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ $status -ne 0 && -s $work/persona.log ]]; then
    echo "---- last lines of persona.log ----" >&2
    tail -n 25 "$work/persona.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "building persona and the fake AI provider"
bins=$(build_binaries "$work" persona:persona persona-bench:fake-provider)
persona_bin=$(awk '$1 == "persona" {print $2}' <<<"$bins")
fake_bin=$(awk '$1 == "fake-provider" {print $2}' <<<"$bins")
[[ -x $persona_bin && -x $fake_bin ]] || fail "could not find the built binaries in: $bins"

step "installing $SELENIUM_PACKAGE into a temporary venv"
venv_install "$work/venv" "$SELENIUM_PACKAGE"

fake_port=$(free_port)
"$fake_bin" "127.0.0.1:$fake_port" >"$work/fake-provider.log" 2>&1 &
fake_pid=$!

clear_persona_env
port=$(free_port)
server="http://127.0.0.1:$port"
export PERSONA_STORAGE__DATA_DIR="$work/data"
export PERSONA_SERVER__BIND="127.0.0.1:$port"
export PERSONA_AUTH__ARGON2_MEMORY_KIB=1024
export PERSONA_AUTH__ARGON2_ITERATIONS=1
export PERSONA_RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE=1000
export PERSONA_AI__BASE_URL="http://127.0.0.1:$fake_port/v1"
export PERSONA_AI__API_KEY=console-test-key
export PERSONA_AI__DEFAULT_MODEL=openai/gpt-4o-mini
mkdir -p "$work/run"
cd "$work/run"

step "making the administrator with the CLI"
printf 'console-password-1\n' | "$persona_bin" admin user create --email admin@example.com \
  --admin --password-stdin >/dev/null || fail "persona admin user create failed"

step "starting persona on $server"
"$persona_bin" serve >"$work/persona.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$server/health/ready" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || fail "persona exited before it was ready"
  ((SECONDS < deadline)) || fail "persona not ready within 60 s"
  sleep 0.1
done

mkdir -p "$SCREENSHOTS"
rm -f "$SCREENSHOTS"/*.png
step "driving the console in headless chromium"
limit=()
command -v timeout >/dev/null && limit=(timeout 300)
status=0
"${limit[@]}" "$work/venv/bin/python" "$repo/scripts/console_browser.py" "$server" \
  admin@example.com console-password-1 "$SCREENSHOTS" || status=$?
if [[ $status -eq 124 ]]; then
  fail "the browser checks did not finish within 300 s"
elif [[ $status -ne 0 ]]; then
  fail "the browser checks failed (exit $status); screenshots in $SCREENSHOTS"
fi
step "screenshots: $(cd "$SCREENSHOTS" && ls ./*.png | tr '\n' ' ')in $SCREENSHOTS"
step "passed in $((SECONDS - started)) s"
