#!/usr/bin/env bash
# Run before raising an upper bound in pyproject.toml: a fresh venv with the NEWEST release of every dependency
# (the bounds lifted), the whole suite, and a one-line verdict naming the versions it ran on.
#   tools/check_latest.sh              # torch stays at the CPU build named by TORCH_SPEC (default torch==2.13.0)
#   KEEP_VENV=1 tools/check_latest.sh  # keep the venv to debug a failure
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
work=$(mktemp -d)
trap '[ -n "${KEEP_VENV:-}" ] || rm -rf "$work"' EXIT
python3 -m venv "$work/venv" && . "$work/venv/bin/activate"
pip install -q --upgrade pip >/dev/null
pip install -q "${TORCH_SPEC:-torch==2.13.0}" || { echo "check_latest: FAIL (torch did not install)"; exit 2; }
pip install -q --no-deps -e . || { echo "check_latest: FAIL (rlnf did not install)"; exit 2; }
# Every dependency of rlnf and of its dev/audio extras by name only: pip resolves the newest releases.
names=$(python - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
specs = project["dependencies"] + project["optional-dependencies"]["dev"] + project["optional-dependencies"]["audio"]
names = {re.match(r"[A-Za-z0-9_.-]+", spec).group(0) for spec in specs}
print(" ".join(sorted(n for n in names if n != "torch")))
PY
)
pip install -q --upgrade $names || { echo "check_latest: FAIL (the newest releases do not install together)"; exit 2; }
versions=$(python - <<'PY'
from importlib.metadata import version
print(", ".join(f"{n} {version(n)}" for n in ("transformers", "trl", "accelerate", "peft", "datasets", "torch")))
PY
)
echo "check_latest: testing on $versions"
log="$work/pytest.log"
# The bounds test would fail by construction here (the point is to run outside the bounds).
python -m pytest tests -q -p no:warnings -x --deselect \
  "tests/test_compat.py::test_installed_versions_are_within_the_declared_bounds" >"$log" 2>&1
status=$?
tail -n 15 "$log"
if [ $status -eq 0 ]; then
  echo "check_latest: PASS on $versions: the upper bounds in pyproject.toml can be raised to admit these"
else
  echo "check_latest: FAIL on $versions: keep the bounds; the first failure is above"
fi
exit $status
