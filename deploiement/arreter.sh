#!/usr/bin/env bash
# Arrête le hub, son proxy, le service du cours et les serveurs des étudiant·e·s (cleanup_servers).
set -euo pipefail
PREFIXE="${PREFIXE:-/opt/cours-autograd}"
pid_file="$PREFIXE/journal/hub.pid"
pid="$(cat "$pid_file" 2>/dev/null || true)"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$pid_file"
# Ce qui survivrait au hub (proxy, service du cours) : tout ce qui tourne depuis $PREFIXE.
pkill -TERM -f "^[^ ]*$PREFIXE/" 2>/dev/null || true
sleep 2
pkill -KILL -f "^[^ ]*$PREFIXE/" 2>/dev/null || true
echo "Hub arrêté."
