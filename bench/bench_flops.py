"""Encoder cost of the reduced Xception (Standley et al., 2020) across widths and input sizes.

Prints a table and writes ``bench/results/flops.json``: multiply-adds and parameters of the
encoder at widths 1, 0.5 and 0.2 on 256x256 and 64x64 inputs (each relative to width 1), the
channel multiplier whose cost is exactly half
(:func:`taskgrouper.evaluate.cost.width_for_cost`), and the
parameters of the light decoder for one output channel.

Run: ``.venv/bin/python bench/bench_flops.py``
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from taskgrouper.evaluate.cost import count_macs, count_params, encoder_cost, width_for_cost
from taskgrouper.models import LightDecoder, XceptionEncoder, build_backbone

WIDTHS = (1.0, 0.5, 0.2)
SIZES = (256, 64)
OUT = Path(__file__).resolve().parent / "results" / "flops.json"


def main() -> dict:
    rows = []
    for size in SIZES:
        shape = (3, size, size)
        ref_macs = ref_params = None
        for width in WIDTHS:
            with torch.device("meta"):
                enc = build_backbone("xception", shape, width=width)
            macs = count_macs(enc, shape)
            params = count_params(enc)
            if ref_macs is None:
                ref_macs, ref_params = macs, params
            rows.append({"input": size, "width": width, "macs": macs, "params": params,
                         "macs_rel": macs / ref_macs, "params_rel": params / ref_params})
    half = {}
    for size in SIZES:
        shape = (3, size, size)
        mult = width_for_cost(0.5, shape)  # the channel multiplier for exactly half the cost
        half[str(size)] = {
            "channel_mult": mult,
            "macs_rel": (encoder_cost("xception", shape, mult * mult)
                         / encoder_cost("xception", shape, 1)),
        }
    with torch.device("meta"):
        full = XceptionEncoder(3, 1.0)
        dec = LightDecoder(full.out_channels[-1], 1, stride=full.strides[-1])
    decoder = {"in_channels": full.out_channels[-1], "out_channels": 1, "stride": 16,
               "params": count_params(dec), "macs_256": count_macs(dec, (512, 16, 16))}
    result = {"encoder": rows, "width_for_half_cost": half, "decoder": decoder,
              "torch": torch.__version__, "python": platform.python_version()}

    print(f"{'input':>5} {'width':>5} {'MACs (G)':>9} {'rel':>6} {'params (M)':>10} {'rel':>6}")
    for r in rows:
        print(f"{r['input']:>5} {r['width']:>5.2f} {r['macs'] / 1e9:>9.4f} {r['macs_rel']:>6.3f} "
              f"{r['params'] / 1e6:>10.4f} {r['params_rel']:>6.3f}")
    for size, h in half.items():
        print(f"channel multiplier for half cost at {size}x{size}: {h['channel_mult']:.4f} "
              f"(cost {h['macs_rel']:.4f} of width 1)")
    print(f"light decoder (512 -> 1, stride 16): {decoder['params']} params, "
          f"{decoder['macs_256'] / 1e6:.1f} M MACs at 256x256")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT}")
    return result


if __name__ == "__main__":
    main()
