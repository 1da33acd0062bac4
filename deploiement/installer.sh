#!/usr/bin/env bash
# Installe le cours pour une promotion sur une machine Debian 12 (ou Ubuntu avec Python 3.11), en root :
# JupyterHub (PyPI) derrière configurable-http-proxy (npm), PostgreSQL (Debian) pour la base du hub et le carnet de
# notes de nbgrader, un service JupyterHub par cours (Formgrader sous un compte correcteur dédié), l'échange de
# fichiers de nbgrader avec des droits sûrs, l'environnement du cours (mêmes versions que pyproject.toml) pour chaque
# serveur étudiant. Relancer le script ne casse rien : chaque étape vérifie ce qui existe déjà.
#
#   sudo deploiement/installer.sh                   # installe, crée les comptes de deploiement/comptes.csv, démarre
#   sudo COMPTES=promo.csv deploiement/installer.sh  # une autre liste de comptes (id,nom,prenom,email,role)
#
# Réglages (variables d'environnement, valeurs par défaut entre crochets) :
#   PREFIXE [/opt/cours-autograd]     tout ce qui est installé (environnement Python, proxy, configuration, secrets)
#   COURS [cours-autograd]            identifiant du cours (= course_id de nbgrader = nom du service JupyterHub)
#   ECHANGE [/srv/nbgrader/exchange]  dossier d'échange de nbgrader (mode 1777 : le bit « sticky » protège les cours)
#   ADRESSE [http://127.0.0.1:8000]   adresse du hub ; derrière un proxy HTTPS (nginx), gardez 127.0.0.1
#   COMPTES [deploiement/comptes.csv] comptes à créer : id,nom,prenom,email,role (role : enseignant, correcteur, etudiant)
#   DEMARRER [1]                      0 : installe sans démarrer le hub
set -euo pipefail

ICI="$(cd "$(dirname "$0")" && pwd)"
DEPOT="$(cd "$ICI/.." && pwd)"
PREFIXE="${PREFIXE:-/opt/cours-autograd}"
COURS="${COURS:-cours-autograd}"
ECHANGE="${ECHANGE:-/srv/nbgrader/exchange}"
ADRESSE="${ADRESSE:-http://127.0.0.1:8000}"
COMPTES="${COMPTES:-$ICI/comptes.csv}"
DEMARRER="${DEMARRER:-1}"
CORRECTEUR="correcteur-$COURS"
DOSSIER_COURS="/home/$CORRECTEUR/$COURS"
BASE_NOTES="notes_${COURS//-/_}"

dire() { printf '\n==> %s\n' "$*"; }
echec() { printf 'Erreur : %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || echec "lancez ce script en root (sudo), il crée des comptes et installe des paquets."
command -v apt-get >/dev/null || echec "ce script vise Debian ou Ubuntu (apt-get introuvable)."
[ -r "$COMPTES" ] || echec "liste de comptes introuvable : $COMPTES"

dire "Paquets Debian : PostgreSQL, bubblewrap (bac à sable de la correction), Node.js, Python"
export DEBIAN_FRONTEND=noninteractive
manquants=""
for p in postgresql bubblewrap python3 python3-venv; do dpkg -s "$p" >/dev/null 2>&1 || manquants="$manquants $p"; done
# Node.js et npm : ceux de Debian, sauf si un Node.js récent (qui fournit npm) est déjà là.
command -v node >/dev/null 2>&1 || manquants="$manquants nodejs"
command -v npm >/dev/null 2>&1 || manquants="$manquants npm"
if [ -n "$manquants" ]; then
  apt-get install -y -qq $manquants >/dev/null || { apt-get update -qq && apt-get install -y -qq $manquants >/dev/null; }
fi
# Les serveurs des étudiant·e·s tournent sous leur propre compte : l'environnement Python doit être lisible par
# tous, donc construit depuis le Python du système (pas depuis un Python installé dans /root).
PY=/usr/bin/python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null ||
  echec "le cours demande Python 3.11 ($PY est $("$PY" --version 2>&1)) : Debian 12 le fournit."

mkdir -p "$PREFIXE"/{etc,journal,secrets} && chmod 755 "$PREFIXE" && chmod 700 "$PREFIXE/secrets"

dire "Environnement Python du cours ($PREFIXE/env) : mêmes versions que pyproject.toml, plus JupyterHub"
[ -x "$PREFIXE/env/bin/python" ] || "$PY" -m venv "$PREFIXE/env"
"$PREFIXE/env/bin/python" -m pip install -q --disable-pip-version-check "$DEPOT" -r "$ICI/requirements-hub.txt"
# JupyterLab du cours (français, extensions étudiantes de nbgrader) pour tous les serveurs de cet environnement.
cp -R "$DEPOT/jupyter/etc" "$DEPOT/jupyter/share" "$PREFIXE/env/"
# Sur le hub, les étudiant·e·s récupèrent et rendent les TP par l'onglet « Assignments » (échange de nbgrader).
cp -R "$ICI/jupyter/etc" "$PREFIXE/env/"
# Configuration de nbgrader commune à tous les serveurs : échange, droits par groupes du hub.
install -m 644 "$ICI/nbgrader_config_global.py" "$PREFIXE/env/etc/jupyter/nbgrader_config.py"
chmod -R a+rX "$PREFIXE/env"

dire "configurable-http-proxy (npm, version épinglée)"
[ -x "$PREFIXE/proxy/node_modules/.bin/configurable-http-proxy" ] ||
  npm install --silent --no-audit --no-fund --prefix "$PREFIXE/proxy" "configurable-http-proxy@$(cat "$ICI/version-proxy.txt")" >/dev/null

dire "Secrets (mots de passe des bases, jetons) dans $PREFIXE/secrets, lisibles par root seul"
secret() { [ -s "$PREFIXE/secrets/$1" ] || (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$PREFIXE/secrets/$1"); cat "$PREFIXE/secrets/$1"; }
MDP_HUB="$(secret base-hub)"
MDP_NOTES="$(secret base-notes)"
secret cle-cookies >/dev/null
secret mot-de-passe-demo >/dev/null

dire "PostgreSQL : base du hub et carnet de notes du cours"
cluster="$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')"
[ -n "$cluster" ] || echec "aucun cluster PostgreSQL (pg_lsclusters) : réinstallez le paquet postgresql."
pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online || pg_ctlcluster $cluster start
psql_root() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtAX "$@"; }
role() { psql_root -c "SELECT 1 FROM pg_roles WHERE rolname='$1'" | grep -q 1 ||
  psql_root -c "CREATE ROLE \"$1\" LOGIN PASSWORD '$2'"; psql_root -c "ALTER ROLE \"$1\" PASSWORD '$2'"; }
base() { psql_root -c "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1 ||
  psql_root -c "CREATE DATABASE \"$1\" OWNER \"$2\""; }
role hub "$MDP_HUB" && base jupyterhub hub
role correcteur "$MDP_NOTES" && base "$BASE_NOTES" correcteur
URL_NOTES="postgresql+psycopg://correcteur:$MDP_NOTES@127.0.0.1/$BASE_NOTES"

dire "Comptes Unix (dossiers personnels en 0700 : personne ne lit le travail d'un·e autre)"
creer_compte() {
  id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash -K HOME_MODE=0700 "$1"
  chmod 700 "/home/$1"
}
creer_compte "$CORRECTEUR"
"$PREFIXE/env/bin/python" "$ICI/comptes.py" valider "$COMPTES"
while IFS=, read -r identifiant _; do creer_compte "$identifiant"; done < <("$PREFIXE/env/bin/python" "$ICI/comptes.py" identifiants "$COMPTES")

dire "Dossier du cours pour le compte correcteur ($DOSSIER_COURS)"
mkdir -p "$DOSSIER_COURS"
for f in nbgrader_config.py source release jupyter; do cp -R "$DEPOT/$f" "$DOSSIER_COURS/"; done
chown -R "$CORRECTEUR:$CORRECTEUR" "/home/$CORRECTEUR"

dire "Échange de nbgrader ($ECHANGE, mode 1777)"
mkdir -p "$ECHANGE" && chmod 1777 "$ECHANGE"

dire "Configuration du hub ($PREFIXE/etc)"
umask 077
cat >"$PREFIXE/etc/deploiement.env" <<EOF
COURS=$COURS
PREFIXE=$PREFIXE
DEPOT=$DEPOT
ECHANGE=$ECHANGE
ADRESSE=$ADRESSE
COMPTES=$(readlink -f "$COMPTES")
CORRECTEUR=$CORRECTEUR
DOSSIER_COURS=$DOSSIER_COURS
HUB_DB_URL=postgresql+psycopg://hub:$MDP_HUB@127.0.0.1/jupyterhub
COURS_AUTOGRAD_GRADEBOOK_URL=$URL_NOTES
EOF
umask 022
install -m 644 "$ICI/jupyterhub_config.py" "$PREFIXE/etc/jupyterhub_config.py"

if [ "$DEMARRER" = 1 ]; then
  "$ICI/demarrer.sh"
fi
dire "Terminé. Hub : $ADRESSE — correction : sudo $ICI/corriger.sh <tp>"
