"""The theory and the estimators stay free of torch, so they install and import light."""

import subprocess
import sys


def test_theory_fit_and_recommend_do_not_import_torch():
    code = (
        "import sys, surge.theory, surge.fit, surge.recommend; "
        "bad = [m for m in ('torch', 'torchvision') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"imported: {proc.stdout.strip()} {proc.stderr}"
