"""The roofline's peak microbenchmark measures what it says: each precision's matmul really runs in that
precision's kernels (read back from the compiled model), and the numbers are positive and consistent."""


def test_peak_rows_run_in_their_precision(tmp_path):
    import json

    from ldm3d_edge.bench.peak import main

    assert main(["--size", "256", "--repeat", "2", "--out", str(tmp_path / "peak")]) == 0
    r = json.loads((tmp_path / "peak.json").read_text())
    fp32, int8 = r["peaks"]["FP32"], r["peaks"]["INT8"]
    assert set(fp32["kernel_precisions"]) == {"f32"}
    assert set(int8["kernel_precisions"]) <= {"u8", "i8"} and int8["kernel_precisions"]
    assert all(p["gops"] > 0 and p["min_s"] <= p["median_s"] <= p["max_s"] for p in r["peaks"].values())
    assert "| INT8 |" in (tmp_path / "peak.md").read_text()
