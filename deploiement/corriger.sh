#!/usr/bin/env bash
# Ramasse les copies rendues par l'échange de nbgrader puis les corrige avec `autograder grade` (bac à sable,
# en parallèle) sous le compte correcteur, dans le carnet de notes PostgreSQL du cours ; publie les retours.
#   sudo deploiement/corriger.sh tp1_gradients [options de autograder grade…]
# Les notes : carnet de notes (Formgrader, nbgrader export), grades/<tp>*.csv dans le dossier du cours.
set -euo pipefail
PREFIXE="${PREFIXE:-/opt/cours-autograd}"
[ $# -ge 1 ] || { echo "usage : sudo $0 <tp> [options de autograder grade]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "Erreur : lancez ce script en root (il agit sous le compte correcteur)." >&2; exit 1; }
set -a; . "$PREFIXE/etc/deploiement.env"; set +a
tp="$1"; shift
comme_correcteur() {
  runuser -u "$CORRECTEUR" -- env -C "$DOSSIER_COURS" HOME="/home/$CORRECTEUR" PATH="$PREFIXE/env/bin:/usr/bin:/bin" \
    ECHANGE="$ECHANGE" COURS_AUTOGRAD_GRADEBOOK_URL="$COURS_AUTOGRAD_GRADEBOOK_URL" "$@"
}
# Hors d'un serveur du hub, l'échange se contrôle par les droits du système de fichiers : pas de jeton à vérifier.
comme_correcteur nbgrader collect "$tp" --update --Authenticator.plugin_class=nbgrader.auth.NoAuthPlugin
comme_correcteur autograder grade "$tp" submitted/ "$@"
comme_correcteur nbgrader release_feedback "$tp" --Authenticator.plugin_class=nbgrader.auth.NoAuthPlugin
