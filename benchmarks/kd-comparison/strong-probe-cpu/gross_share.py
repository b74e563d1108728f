"""MRE, SDR@2mm and the > 4 mm share with its landmarks, from `edgeld evaluate --json` files:

    python benchmarks/kd-comparison/strong-probe-cpu/gross_share.py RESULT.json...
"""
import json
import sys

for path in sys.argv[1:]:
    r = json.load(open(path))
    n = r["n_images"]
    gross = {p["name"]: round((100 - p["sdr_percent"]["4.0"]) / 100 * n) for p in r["per_landmark"]}
    total = sum(gross.values())
    top = sorted(gross.items(), key=lambda kv: -kv[1])[:5]
    print(f"{r['model']}: MRE {r['mre_mm']:.3f} mm  SDR@2mm {r['sdr_percent']['2.0']:.1f}%  "
          f"> 4 mm {100 - r['sdr_percent']['4.0']:.1f}% ({total} of {n * r['n_landmarks']}); "
          + ", ".join(f"{k} {v} ({100 * v / max(total, 1):.0f}% of them; {100 * v / n:.0f}% of its points)"
                     for k, v in top))
