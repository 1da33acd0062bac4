#!/usr/bin/env bash
# Démarre le hub du cours en arrière-plan (machines sans systemd) ; avec systemd, préférez
# deploiement/cours-autograd-hub.service. Journal : $PREFIXE/journal/hub.log. Arrêt : deploiement/arreter.sh.
set -euo pipefail
PREFIXE="${PREFIXE:-/opt/cours-autograd}"
[ "$(id -u)" = 0 ] || { echo "Erreur : lancez ce script en root (le hub démarre les serveurs sous le compte de chacun·e)." >&2; exit 1; }
[ -r "$PREFIXE/etc/deploiement.env" ] || { echo "Erreur : $PREFIXE/etc/deploiement.env manque : lancez d'abord deploiement/installer.sh." >&2; exit 1; }
set -a; . "$PREFIXE/etc/deploiement.env"; set +a
if [ -s "$PREFIXE/journal/hub.pid" ] && kill -0 "$(cat "$PREFIXE/journal/hub.pid")" 2>/dev/null; then
  echo "Le hub tourne déjà (PID $(cat "$PREFIXE/journal/hub.pid"))."; exit 0
fi
# PostgreSQL démarré (sur une machine sans systemd, personne ne l'a fait au démarrage).
cluster="$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')"
pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online || pg_ctlcluster $cluster start
cd "$PREFIXE/etc"
setsid "$PREFIXE/env/bin/jupyterhub" -f "$PREFIXE/etc/jupyterhub_config.py" >>"$PREFIXE/journal/hub.log" 2>&1 </dev/null &
echo $! >"$PREFIXE/journal/hub.pid"
for _ in $(seq 1 120); do
  if "$PREFIXE/env/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/hub/api', timeout=2)" "$ADRESSE" 2>/dev/null; then
    echo "Hub prêt : $ADRESSE (PID $(cat "$PREFIXE/journal/hub.pid"))."; exit 0
  fi
  kill -0 "$(cat "$PREFIXE/journal/hub.pid")" 2>/dev/null || break
  sleep 1
done
echo "Erreur : le hub n'a pas démarré ; fin du journal ($PREFIXE/journal/hub.log) :" >&2
tail -n 30 "$PREFIXE/journal/hub.log" >&2
exit 1
