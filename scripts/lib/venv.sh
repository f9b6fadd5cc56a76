# shellcheck shell=bash
# The Python virtual environment ($VENV) with the pinned requirements and the
# package installed editable. Part of scripts/common.sh; sourced, never executed.

# Create the virtual environment and install the pinned requirements once per
# change of the requirement file (a stamp records what was installed).
ensure_venv() {
  local req="$ROOT/flask/${1:-requirements.txt}" stamp sum
  [[ -x "$VENV/bin/python" ]] || { info "creating $VENV"; python3 -m venv "$VENV"; }
  sum="$(cat "$ROOT/flask/requirements.txt" "$req" "$ROOT/flask/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  stamp="$VENV/.installed-$(basename "$req")"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
    info "installing pinned packages from flask/$(basename "$req")"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT/flask" >&2
    echo "$sum" > "$stamp"
  fi
}
