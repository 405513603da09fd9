# Shared by the checks CI runs with real clients (scripts/openai-sdk-check.sh,
# scripts/api-fuzz.sh, deploy/litestream-check.sh): build the binaries, install a PyPI package
# into a temporary venv, pick a free port, keep the developer's PERSONA_* settings out.
# Source it after defining `fail` and `step`; it uses $PYTHON.

# Builds the named binaries of the workspace (`package:binary` pairs) and prints
# "binary path" lines; the paths come from cargo itself (honours CARGO_TARGET_DIR).
build_binaries() {
  local work=$1 args=()
  shift
  for pair in "$@"; do
    args+=(-p "${pair%%:*}" --bin "${pair##*:}")
  done
  cargo build --locked "${args[@]}" --message-format=json-render-diagnostics \
    >"$work/build.json" || fail "cargo build failed"
  "$PYTHON" - "$work/build.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["target"]["name"], message["executable"])
PY
}

# The persona executable: $PERSONA_BIN when set, else built now.
persona_binary() {
  local work=$1 path
  if [[ -n ${PERSONA_BIN:-} ]]; then
    path=$PERSONA_BIN
  else
    step "building persona" >&2
    path=$(build_binaries "$work" persona:persona | awk '$1 == "persona" {print $2}')
  fi
  [[ -x $path ]] || fail "no persona executable at '$path'"
  echo "$path"
}

# Creates the venv $1 and installs the packages $2… into it.
venv_install() {
  local venv=$1
  shift
  "$PYTHON" -m venv "$venv" || fail "python -m venv failed (is the venv module installed?)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --timeout 60 "$@" || fail "pip install $* failed"
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Only the calling script's settings reach the server (and the CLI).
clear_persona_env() {
  local name
  for name in $(compgen -e); do
    if [[ $name == PERSONA_* ]]; then
      unset "$name"
    fi
  done
}
