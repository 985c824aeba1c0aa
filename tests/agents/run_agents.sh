#!/usr/bin/env bash
# Real coding agents, each asked for a model of ANOTHER provider, through a real sidecar in front of fakes.
#
#   bash tests/agents/run_agents.sh            # all three agents
#   AGENTS="claude gemini" bash tests/agents/run_agents.sh
#
# Not part of the pytest suite: it needs the npm registry (it installs the agents into a temp dir, never
# globally) and takes a minute or two. Everything it starts listens on 127.0.0.1 and is stopped at exit.
#
#   Claude Code (@anthropic-ai/claude-code) → Anthropic Messages → model openai/gpt-4o-mini   (OpenAI fake)
#   Codex CLI   (@openai/codex)             → OpenAI Responses   → model anthropic/claude-haiku-4-5 (Anthropic fake)
#   Gemini CLI  (@google/gemini-cli)        → Gemini generateContent → model anthropic/claude-haiku-4-5
#
# How it is wired:
#   agent ──► tap.py "agent" (logs method, path?query, headers, status; refuses proxied outside hosts)
#         ──► `python -m sidecar serve` (keys from a throwaway plaintext keyring file; bodies stored)
#         ──► tap.py "openai"/"anthropic"/"gemini" (logs what the sidecar sent upstream, translated bodies too)
#         ──► `python -m sidecar.fake_upstream` × 3 (each demands its own fake key, so key injection is checked)
# Keys: keyrings.alt's PlaintextKeyring (PYTHON_KEYRING_BACKEND) with its file in the temp dir
# (KEYRING_PROPERTY_FILE_PATH), installed into the venv if missing — a test-only tool, not a project dependency.
# The agents run under `env -i` with HOME, XDG dirs and CODEX_HOME in the temp dir, telemetry / update checks /
# onboarding / plugin sync off, HTTP(S)_PROXY pointing at the agent tap (NO_PROXY for 127.0.0.1) so any
# outside host an agent still tries is logged and refused, and `timeout 120` each.
#
# Each agent runs first with its default settings. When that fails, it runs once more with a client-side
# workaround (Claude Code: CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1; Codex: web_search off, multi_agent off)
# to show whether the rest of the path works. Per run the script prints the exit code, the agent's output,
# every HTTP request it made, its headers, the sidecar's records (GET /_sidecar/requests/{id}: status, error,
# request-body summary: keys, tools, system size, thinking, cache_control, ...) and what went upstream.
#
# Environment knobs:
#   PYTHON=...           interpreter with the project installed (default: /work/venv, .venv, python3)
#   AGENTS_NPM_DIR=DIR   reuse an npm prefix holding the agents (default: a fresh one in the temp dir)
#   AGENTS="..."         which agents to run: claude codex gemini
#   KEEP_TMP=1           keep the temp dir (logs, tap.jsonl, requests.db) and print its path
#   CLAUDE_MODEL / CODEX_MODEL / GEMINI_MODEL   the cross-provider model each agent asks for
#   AGENT_TIMEOUT=120    seconds per agent run
#   PROMPT="..."         the prompt; one containing "weather" (e.g. "What is the weather in Paris?") makes the
#                        fakes answer with a call to the agent's first tool: a full tool round trip
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tests/agents"
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x /work/venv/bin/python ]; then PY=/work/venv/bin/python
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi
AGENTS=${AGENTS:-claude codex gemini}
AGENT_TIMEOUT=${AGENT_TIMEOUT:-120}
CLAUDE_MODEL=${CLAUDE_MODEL:-openai/gpt-4o-mini}
CODEX_MODEL=${CODEX_MODEL:-anthropic/claude-haiku-4-5}
GEMINI_MODEL=${GEMINI_MODEL:-anthropic/claude-haiku-4-5}
PROMPT=${PROMPT:-"Reply with one short sentence: what is two plus two?"}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sidecar-agents.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  if [ -n "${KEEP_TMP:-}" ]; then echo "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n=== %s\n' "$*"; }
die() { echo "run_agents.sh: $*" >&2; exit 1; }

# start_bg NAME REGEX CMD...: run CMD in the background (log in $TMP/NAME.log), wait for a line matching
# REGEX, and set BG_URL to the first http://... URL on it. Not for use inside $(...): the PID must be
# recorded in this shell so the EXIT trap can stop it.
start_bg() {
  local name=$1 regex=$2; shift 2
  "$@" >"$TMP/$name.log" 2>&1 &
  local pid=$! i
  PIDS+=("$pid")
  BG_URL=
  for i in $(seq 1 150); do
    if grep -qE "$regex" "$TMP/$name.log" 2>/dev/null; then
      BG_URL=$(grep -E "$regex" "$TMP/$name.log" | head -1 | grep -oE 'http://[^ ]+' | head -1)
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "--- $name did not start; its log:" >&2
  cat "$TMP/$name.log" >&2
  return 1
}

# ---------------------------------------------------------------------------------------------- tools
say "setup (temp dir $TMP, python $PY)"
cd "$ROOT" || die "cannot cd to $ROOT"
"$PY" -c 'import sidecar, aiohttp' || die "$PY cannot import the project; install it with pip install -e ."
if ! "$PY" -c 'import keyrings.alt' 2>/dev/null; then
  echo "installing keyrings.alt (test-only) into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q --disable-pip-version-check keyrings.alt || die "cannot install keyrings.alt"
fi
command -v npm >/dev/null || die "npm is needed"

NPM_DIR=${AGENTS_NPM_DIR:-$TMP/npm}
mkdir -p "$NPM_DIR"
need=()
[[ " $AGENTS " == *" claude "* ]] && [ ! -x "$NPM_DIR/node_modules/.bin/claude" ] && need+=(@anthropic-ai/claude-code)
[[ " $AGENTS " == *" codex "* ]] && [ ! -x "$NPM_DIR/node_modules/.bin/codex" ] && need+=(@openai/codex)
[[ " $AGENTS " == *" gemini "* ]] && [ ! -x "$NPM_DIR/node_modules/.bin/gemini" ] && need+=(@google/gemini-cli)
if [ ${#need[@]} -gt 0 ]; then
  echo "npm install --prefix $NPM_DIR ${need[*]}"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "${need[@]}" >"$TMP/npm.log" 2>&1 \
    || { cat "$TMP/npm.log"; die "npm install failed"; }
fi
BIN="$NPM_DIR/node_modules/.bin"

# ---------------------------------------------------------------------------------------------- fakes
declare -A FAKE_KEY=([openai]=fake-openai-key-0001 [anthropic]=fake-anthropic-key-0002 [gemini]=fake-gemini-key-0003)
declare -A FAKE_URL UP_TAP
for kind in openai anthropic gemini; do
  start_bg "fake-$kind" '^fake .* upstream at ' \
    "$PY" -m sidecar.fake_upstream --kind "$kind" --port 0 --key "${FAKE_KEY[$kind]}" --chunk-delay 0.01 \
    || die "fake $kind upstream did not start"
  FAKE_URL[$kind]=$BG_URL
  echo "fake $kind: ${FAKE_URL[$kind]}"
done
# Taps between the sidecar and the fakes log what the sidecar sent upstream (translated bodies included).
UPLOG="$TMP/tap-upstream.jsonl"
: >"$UPLOG"
"$PY" "$HERE/tap.py" --log "$UPLOG" \
  --tap "openai=${FAKE_URL[openai]%/v1}" --tap "anthropic=${FAKE_URL[anthropic]}" --tap "gemini=${FAKE_URL[gemini]}" \
  --bodies openai --bodies anthropic --bodies gemini >"$TMP/tap-upstream.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 100); do [ "$(grep -c '^tap ' "$TMP/tap-upstream.log")" = 3 ] && break; sleep 0.1; done
for kind in openai anthropic gemini; do
  UP_TAP[$kind]=$(grep "^tap $kind at " "$TMP/tap-upstream.log" | grep -oE 'http://[^ ]+') \
    || { cat "$TMP/tap-upstream.log"; die "upstream tap $kind did not start"; }
done

# ---------------------------------------------------------------------------------------------- sidecar
export XDG_CONFIG_HOME="$TMP/xdg/config" XDG_DATA_HOME="$TMP/xdg/data" XDG_STATE_HOME="$TMP/xdg/state" \
  XDG_CACHE_HOME="$TMP/xdg/cache"
export PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring KEYRING_PROPERTY_FILE_PATH="$TMP/keyring.cfg"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"
CONFIG="$TMP/sidecar.toml"
cat >"$CONFIG" <<EOF
[providers.openai]
base_url = "${UP_TAP[openai]}/v1"
[providers.anthropic]
base_url = "${UP_TAP[anthropic]}"
[providers.gemini]
base_url = "${UP_TAP[gemini]}"

[store]
bodies = true
body_cap_kb = 4096          # agents send 40-150 KB of tools and system prompt: keep them whole
data_dir = "$TMP/sidecar-data"

[timeouts]
first_byte = 60
EOF
for kind in openai anthropic gemini; do
  printf %s "${FAKE_KEY[$kind]}" | "$PY" -m sidecar --config "$CONFIG" keys set "$kind" >/dev/null \
    || die "cannot store the $kind key"
done
start_bg sidecar 'listening on http' "$PY" -m sidecar --config "$CONFIG" serve --port 0 || die "sidecar did not start"
SIDECAR=$BG_URL
echo "sidecar: $SIDECAR (upstreams through taps: ${UP_TAP[openai]} ${UP_TAP[anthropic]} ${UP_TAP[gemini]})"
curl -s "$SIDECAR/_sidecar/health" | "$PY" -c '
import json, sys
h = json.load(sys.stdin)
print("health:", h["status"], [(p["id"], p["has_key"]) for p in h["providers"] if p["id"] in ("openai", "anthropic", "gemini")])'

TAPLOG="$TMP/tap-agent.jsonl"
: >"$TAPLOG"
start_bg tap-agent '^tap agent at ' "$PY" "$HERE/tap.py" --log "$TAPLOG" --tap "agent=$SIDECAR" \
  || die "agent tap did not start"
TAP=$BG_URL
echo "tap:     $TAP (agents talk to this; it forwards to the sidecar)"

# ---------------------------------------------------------------------------------------------- agents
WORK="$TMP/work"      # an empty project dir for the agents to run in
mkdir -p "$WORK" "$TMP/agent-tmp"
BASE_ENV=(
  PATH="$BIN:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 TERM=dumb NO_COLOR=1 CI=1
  TMPDIR="$TMP/agent-tmp"
  # stray outside traffic goes to the tap, which logs and refuses it; the sidecar itself is not proxied
  HTTPS_PROXY="$TAP" HTTP_PROXY="$TAP" https_proxy="$TAP" http_proxy="$TAP"
  NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
  NO_UPDATE_NOTIFIER=1 NPM_CONFIG_UPDATE_NOTIFIER=false DO_NOT_TRACK=1
)
declare -A RESULT
ORDER=()

run_agent() {  # LABEL ENV... -- CMD...   (HOME is $TMP/home-<LABEL up to its first dash>)
  local label=$1; shift
  local home="$TMP/home-${label%%-*}"
  local env=() cmd=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done; shift
  cmd=("$@")
  local from to ufrom uto rc
  from=$(wc -l <"$TAPLOG"); ufrom=$(wc -l <"$UPLOG")
  mkdir -p "$home"
  echo "env: ${env[*]}"
  echo "command: ${cmd[*]}"
  (cd "$WORK" && env -i "${BASE_ENV[@]}" HOME="$home" XDG_CONFIG_HOME="$home/.config" \
      XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" XDG_STATE_HOME="$home/.local/state" \
      "${env[@]}" timeout "$AGENT_TIMEOUT" "${cmd[@]}" </dev/null >"$TMP/$label.out" 2>"$TMP/$label.err")
  rc=$?
  sleep 0.5  # let the sidecar's store flush the last record
  to=$(wc -l <"$TAPLOG"); uto=$(wc -l <"$UPLOG")
  RESULT[$label]=$rc
  ORDER+=("$label")
  echo "exit code: $rc$([ $rc = 124 ] && echo ' (timed out)')"
  echo "--- stdout (first 15 lines):"
  head -n 15 "$TMP/$label.out"
  echo "--- stderr (last 12 lines; Codex's 'Unknown model ... fallback model metadata' lines dropped):"
  grep -v 'Unknown model .* fallback model metadata' "$TMP/$label.err" | tail -n 12
  echo "--- what it sent:"
  "$PY" "$HERE/report.py" --log "$TAPLOG" --from "$from" --to "$to" --sidecar "$SIDECAR" \
    --upstream-log "$UPLOG" --ufrom "$ufrom" --uto "$uto"
  return $rc
}

CLAUDE_ENV=(
  ANTHROPIC_BASE_URL="$TAP" ANTHROPIC_API_KEY=sidecar-placeholder
  ANTHROPIC_MODEL="$CLAUDE_MODEL" ANTHROPIC_SMALL_FAST_MODEL="$CLAUDE_MODEL" ANTHROPIC_DEFAULT_HAIKU_MODEL="$CLAUDE_MODEL"
  ANTHROPIC_DEFAULT_SONNET_MODEL="$CLAUDE_MODEL" ANTHROPIC_DEFAULT_OPUS_MODEL="$CLAUDE_MODEL"
  DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_NON_ESSENTIAL_MODEL_CALLS=1 CLAUDE_CODE_DISABLE_TERMINAL_TITLE=1
)
if [[ " $AGENTS " == *" claude "* ]]; then
  say "Claude Code $("$BIN/claude" --version 2>/dev/null | head -1) → $CLAUDE_MODEL (default settings)"
  if ! run_agent claude "${CLAUDE_ENV[@]}" -- "$BIN/claude" -p "$PROMPT" --model "$CLAUDE_MODEL"; then
    # Claude Code 2.x sends context_management (clear_thinking edits) and thinking on every request; the
    # experimental-betas switch drops the beta-gated fields, to see whether the rest of the path works.
    say "Claude Code again, with CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1 (workaround run)"
    run_agent claude-workaround "${CLAUDE_ENV[@]}" CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1 \
      -- "$BIN/claude" -p "$PROMPT" --model "$CLAUDE_MODEL"
  fi
fi

write_codex_config() {  # TOP_LEVEL_TOML FEATURES_TOML
  mkdir -p "$TMP/home-codex/.codex"
  # A custom model provider pointing at the sidecar's OpenAI base; the key is a placeholder the sidecar strips.
  cat >"$TMP/home-codex/.codex/config.toml" <<EOF
model = "$CODEX_MODEL"
model_provider = "sidecar"
check_for_update_on_startup = false
$1

[model_providers.sidecar]
name = "llm-sidecar"
base_url = "$TAP/v1"
env_key = "SIDECAR_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[otel]
exporter = "none"

[features]
plugins = false
remote_plugin = false
$2
EOF
}
CODEX_ENV=(CODEX_HOME="$TMP/home-codex/.codex" SIDECAR_API_KEY=sidecar-placeholder RUST_LOG=warn)
CODEX_CMD=("$BIN/codex" exec --skip-git-repo-check --sandbox read-only --color never "$PROMPT")
if [[ " $AGENTS " == *" codex "* ]]; then
  say "Codex $("$BIN/codex" --version 2>/dev/null | tail -1) → $CODEX_MODEL (default tools)"
  write_codex_config "" ""
  if ! run_agent codex "${CODEX_ENV[@]}" -- "${CODEX_CMD[@]}"; then
    # Codex offers a hosted web_search tool and a `namespace` tool (multi_agent_v1) by default; turn both off.
    say "Codex again, with web_search = \"disabled\" and features.multi_agent = false (workaround run)"
    write_codex_config 'web_search = "disabled"' 'multi_agent = false'
    run_agent codex-workaround "${CODEX_ENV[@]}" -- "${CODEX_CMD[@]}"
  fi
fi

if [[ " $AGENTS " == *" gemini "* ]]; then
  say "Gemini CLI $("$BIN/gemini" --version 2>/dev/null | tail -1) → $GEMINI_MODEL"
  mkdir -p "$TMP/home-gemini/.gemini"
  cat >"$TMP/home-gemini/.gemini/settings.json" <<EOF
{
  "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false},
  "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
  "ide": {"enabled": false}
}
EOF
  run_agent gemini \
    GOOGLE_GEMINI_BASE_URL="$TAP" GEMINI_API_KEY=sidecar-placeholder GEMINI_CLI_NO_RELAUNCH=true \
    GEMINI_TELEMETRY_ENABLED=false \
    -- "$BIN/gemini" -p "$PROMPT" -m "$GEMINI_MODEL"
fi

# ---------------------------------------------------------------------------------------------- summary
say "sidecar records (GET /_sidecar/requests?limit=20), oldest first"
curl -s "$SIDECAR/_sidecar/requests?limit=20" | "$PY" -c '
import json, sys
for r in reversed(json.load(sys.stdin)["requests"]):
    target = "{}/{}".format(r["provider"], r["model"])
    print("  {} {:<16} {:<28} -> {:<32} stream={!s:<5} status={} error={!r}".format(
        r["id"], r["inbound"], r["requested_model"], target, r["stream"], r["status"], r["error"]))'
say "summary"
for label in "${ORDER[@]}"; do
  printf '  %-18s exit %s\n' "$label" "${RESULT[$label]}"
done
if grep -qE ' ERROR |Traceback' "$TMP/sidecar.log"; then
  echo "  sidecar log errors:"
  grep -E ' ERROR |Traceback' "$TMP/sidecar.log" | head -20
fi
# Exit status: 0 only when every agent completed with its default settings (workaround runs don't count).
failed=0
for name in $AGENTS; do
  [ "${RESULT[$name]:-1}" = 0 ] || failed=1
done
[ $failed = 0 ] && echo "  all agents completed with default settings" \
  || echo "  some agents did not complete with default settings (see above); exit 1"
exit $failed
