"""The runtime never imports torch: not at import, not while generating."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_runtime_leaves_torch_out():
    r = _run("import sys, ldm3d_edge.runtime; from ldm3d_edge.runtime import Pipeline; "
             "print('torch' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_generating_leaves_torch_out(tiny4):
    code = ("import sys; from ldm3d_edge.runtime import Pipeline; "
            f"p = Pipeline.load({str(tiny4[1])!r}, device='openvino:CPU'); p('x', num_inference_steps=2, seed=0); "
            f"q = Pipeline.load({str(tiny4[1])!r}, device='onnx:CPU'); q('x', num_inference_steps=2, seed=0); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
