#!/usr/bin/env bash
# compat-tests/redis_cli_hints.sh HOST PORT — redis-cli's interactive argument
# hints, which redis-cli 7 builds from COMMAND DOCS, seen in a real terminal:
# redis-cli runs in a detached tmux session, we type a command without Enter
# and read the screen. Skipped (exit 0, SKIP line) only when tmux is missing.
set -euo pipefail
HOST="$1"; PORT="$2"
if ! command -v tmux >/dev/null; then
  echo "SKIP: tmux not installed (apt-get install tmux): redis-cli hint check not run"
  exit 0
fi
SESSION="dynkv-hints-$$"
cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; }
trap cleanup EXIT
# A wide pane so long hints are not wrapped.
tmux new-session -d -s "$SESSION" -x 250 -y 10 "TERM=xterm redis-cli -h $HOST -p $PORT"
prompt="$HOST:$PORT>"
for _ in $(seq 100); do
  tmux capture-pane -p -t "$SESSION" | grep -qF "$prompt" && break
  sleep 0.1
done
ok=0
# hint TYPED EXPECTED: types TYPED at the prompt (no Enter), expects the line
# to read "prompt TYPED EXPECTED", then clears the line.
hint() {
  local typed="$1" want="$2" screen line
  tmux send-keys -t "$SESSION" -l "$typed"
  for _ in $(seq 30); do
    sleep 0.1
    screen="$(tmux capture-pane -p -t "$SESSION")"
    line="$(grep -F "$prompt $typed" <<<"$screen" | tail -n 1 | sed 's/[[:space:]]*$//')"
    [[ "$line" == *"$want" ]] && break
  done
  if [[ "$line" == "$prompt $typed $want" || "$line" == "$prompt $typed$want" ]]; then
    echo "PASS: redis-cli hint for '$typed': $want"
  else
    echo "FAIL: redis-cli hint for '$typed'"
    echo "      expected: $prompt $typed $want"
    echo "      screen line: $line"
    ok=1
  fi
  tmux send-keys -t "$SESSION" C-u
}
hint "set k" "value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"
hint "get" "key"
hint "scan 0" "[MATCH pattern] [COUNT count] [TYPE type]"
hint "slowlog get" "[count]"
hint "memory usage k" "[SAMPLES count]"
hint "config set" "parameter value [parameter value ...]"
exit $ok
