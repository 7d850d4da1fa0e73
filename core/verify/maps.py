"""`python -m core.verify maps`: run the network on a preprocessed clip and compare with the reference.

The expected file (format of ``expected_seed0.npz``, see the reference README) names what to compare
through its keys; any frame count, clip split and choice of full frames works:

* ``<map>``             the whole map for every frame
* ``<map>_full``        the whole map for the frames listed in ``full_frames``
* ``<map>_s<K>``        every frame, subsampled ``[..., ::K, ::K]`` (also on z for the 3D maps)
* ``<map>_crop``        frames ``full_frames``, y and x cropped around the centre to the expected size
                        (32 -> 48:80, 16 -> 56:72)
* ``<map>_mean/_std/_absmax``  per-frame statistics over the whole map; ``_chan_mean`` per channel
* ``final_clip<c>_<field>``    the official inference outputs of clip c (``final_clip<c>_none``: nothing
                        tracked, the official code returned None)
* ``input512_sum`` / ``input512_crop`` check the input file itself

Error measure per key: max |ours - expected| and the relative error
max |ours - expected| / max(max |expected|, 1e-12) (relative to the array's largest magnitude, so
near-zero entries do not blow it up). Integer-valued keys (ids, grid cells, flags) must match exactly.
Exit status 0 only when every key is produced and within tolerance.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trace_format.atomic import atomic_open

from ..errors import UsageError
from ..tracking import TrackingSettings

__all__ = ["register", "run", "parse_key", "KeySpec", "DEFAULT_RTOL"]

#: maps the network produces, under the capture names of TraceModel.clip_maps (longest first)
NETWORK_MAPS = ("cam_rot_motion_maps", "mesh_feature_maps", "cam_motion_maps", "center_maps_3d", "center_maps_fv",
                "deform_offsets", "flow_lowres_64", "motion_maps_fv", "motion_map_3d", "temporal_out", "cam_maps_3d",
                "deform_out", "flows_128", "img_feat", "gru_out")
THREE_D_MAPS = {"center_maps_3d", "cam_maps_3d", "motion_map_3d"}
STAT_SUFFIXES = ("chan_mean", "absmax", "mean", "std")
NOT_NETWORK_OUTPUTS = {
    "T": "frame count of the reference clip",
    "full_frames": "which frames the _full/_crop keys hold",
    "clip_starts": "clip split of the reference run",
    "seq_cfgs_json": "tracking settings of the reference run (used as input)",
    "cpu_seconds_per_component": "timings of the reference run",
}
SKIPPED = {"offsets": "needs the original frame size, which the expected file does not store "
                      "(the padding offsets are checked by the preprocessing tests)"}
FINAL_FIELDS = ("params_pred", "cam", "cams_init", "world_cams", "world_global_rots", "motion_offsets3D",
                "motion_offsets2D", "pred_batch_ids", "pred_czyxs", "top_score", "track_ids", "detection_flag",
                "global_frame_index", "none")
EXACT_FINAL_FIELDS = {"pred_batch_ids", "pred_czyxs", "track_ids", "detection_flag", "global_frame_index", "none"}
DEFAULT_RTOL = {"float64": 1e-6, "float32": 1e-3}
TINY = 1e-12
MAP_SIZE = 128


@dataclass(frozen=True)
class KeySpec:
    key: str
    kind: str                   # map | final | input | meta | skip | unknown
    base: str = ""
    reduction: str = ""         # all | full | sub | crop | mean | std | absmax | chan_mean
    step: int = 1
    clip: int = -1
    field: str = ""


def parse_key(key: str) -> KeySpec:
    """Classify an expected-file key (see the module docstring)."""
    if key in NOT_NETWORK_OUTPUTS:
        return KeySpec(key, "meta")
    if key in SKIPPED:
        return KeySpec(key, "skip")
    if key in ("input512_sum", "input512_crop"):
        return KeySpec(key, "input", reduction=key.split("_")[1])
    match = re.fullmatch(r"final_clip(\d+)_(.+)", key)
    if match:
        field = match.group(2)
        return KeySpec(key, "final" if field in FINAL_FIELDS else "unknown", clip=int(match.group(1)), field=field)
    for base in NETWORK_MAPS:
        if key == base:
            return KeySpec(key, "map", base, "all")
        if not key.startswith(base + "_"):
            continue
        suffix = key[len(base) + 1:]
        if suffix in ("full", "crop") or suffix in STAT_SUFFIXES:
            return KeySpec(key, "map", base, suffix)
        sub = re.fullmatch(r"s(\d+)", suffix)
        if sub and int(sub.group(1)) > 0:
            return KeySpec(key, "map", base, "sub", step=int(sub.group(1)))
    return KeySpec(key, "unknown")


def _crop_bounds(size: int) -> tuple[int, int]:
    low = MAP_SIZE // 2 - size // 2
    return low, low + size


def reduce_map(spec: KeySpec, tensor: torch.Tensor, rows: list[int] | None, crop_size: int | None) -> torch.Tensor:
    """Apply the key's subsampling / crop / statistic to a clip's map tensor [n, ...]."""
    n = tensor.shape[0]
    r = spec.reduction
    if r == "all":
        return tensor
    if r == "sub":
        k = spec.step
        return tensor[..., ::k, ::k, ::k] if spec.base in THREE_D_MAPS else tensor[..., ::k, ::k]
    if r == "full":
        return tensor[rows]
    if r == "crop":
        low, high = _crop_bounds(crop_size)
        return tensor[rows][..., low:high, low:high]
    flat = tensor.reshape(n, -1)
    if r == "mean":
        return flat.mean(1)
    if r == "std":
        return flat.std(1, correction=0)
    if r == "absmax":
        return flat.abs().amax(1)
    if r == "chan_mean":
        return tensor.reshape(n, tensor.shape[1], -1).mean(-1)
    raise ValueError(f"unknown reduction {r!r}")


@dataclass
class KeyResult:
    key: str
    status: str                 # ok | FAIL | missing | meta | skipped
    shape: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    tolerance: float | None = None
    note: str = ""


def compare_arrays(key: str, ours: Any, expected: np.ndarray, rtol: float, exact: bool) -> KeyResult:
    ours_array = np.asarray(ours)
    if ours_array.shape != expected.shape:
        return KeyResult(key, "FAIL", str(expected.shape), note=f"shape {ours_array.shape} != expected {expected.shape}")
    if expected.size == 0:
        return KeyResult(key, "ok", str(expected.shape), 0.0, 0.0, 0.0 if exact else rtol)
    a = ours_array.astype(np.float64)
    b = expected.astype(np.float64)
    if not np.all(np.isfinite(a)) and np.array_equal(np.isnan(a), np.isnan(b)):
        a = np.nan_to_num(a)
        b = np.nan_to_num(b)
    diff = np.abs(a - b)
    max_abs = float(diff.max())
    max_rel = max_abs / max(float(np.abs(b).max()), TINY)
    ok = max_abs == 0.0 if exact else bool(np.isfinite(max_rel) and max_rel <= rtol)
    return KeyResult(key, "ok" if ok else "FAIL", str(expected.shape), max_abs, max_rel, 0.0 if exact else rtol)


def _final_value(field: str, output: Any, clip_start: int) -> np.ndarray:
    if field == "global_frame_index":
        return output.pred_batch_ids.numpy().astype(np.int64) + clip_start
    value = getattr(output, field)
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=1)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("maps", help="run the network on a preprocessed clip, compare every reference array",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, type=Path, help="folder with the three TRACE checkpoint files")
    parser.add_argument("--input", required=True, type=Path, help="npz holding 'input512' uint8 [T,512,512,3] RGB")
    parser.add_argument("--expected", required=True, type=Path, help="reference npz (expected_seed0.npz format)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--rtol", type=float, default=None,
                        help=f"relative tolerance (default {DEFAULT_RTOL['float64']} for float64, "
                             f"{DEFAULT_RTOL['float32']} for float32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--report", type=Path, default=None, help="also write the per-key results as JSON")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="keep TF32 tensor-core math on CUDA (faster, ~1e-3 relative; off by default here)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import TraceError
    try:
        return _run(args)
    except TraceError as error:
        print(f"error: {error}", file=sys.stderr)
        return int(error.exit_code)


def _load_npz(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return np.load(path, allow_pickle=False)


def _run(args: argparse.Namespace) -> int:
    from ..nn import TraceModel, resolve_device

    try:
        device = resolve_device(args.device)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.allow_tf32:
        # TF32 convolutions / matmuls (CUDA default for convs on Ampere+) cost ~1e-3 relative accuracy
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    rtol = args.rtol if args.rtol is not None else DEFAULT_RTOL[args.dtype]
    try:
        expected = _load_npz(args.expected, "expected")
        images = _load_npz(args.input, "input")["input512"]
    except (FileNotFoundError, KeyError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    total = int(expected["T"]) if "T" in expected.files else len(images)
    if len(images) != total:
        print(f"error: input has {len(images)} frames, expected file describes {total}", file=sys.stderr)
        return 2
    full_frames = [int(f) for f in expected["full_frames"]] if "full_frames" in expected.files else []
    clip_starts = [int(s) for s in expected["clip_starts"]] if "clip_starts" in expected.files else [0]
    clip_bounds = list(zip(clip_starts, clip_starts[1:] + [total]))

    specs = [parse_key(key) for key in expected.files]
    map_specs = [s for s in specs if s.kind == "map"]
    final_specs = [s for s in specs if s.kind == "final"]
    print(f"verify maps: {args.expected.name}: {total} frames, clips {clip_bounds}, full frames {full_frames}, "
          f"{len(expected.files)} keys; dtype {args.dtype}, device {args.device}, relative tolerance {rtol:g} "
          f"(exact for ids, cells and flags)")

    seq_cfgs = json.loads(str(expected["seq_cfgs_json"])) if "seq_cfgs_json" in expected.files else {}
    settings = TrackingSettings.from_seq_cfgs(seq_cfgs)

    produced: dict[str, np.ndarray] = {}
    finals: dict[str, np.ndarray] = {}
    final_missing: dict[str, str] = {}
    needs_network = bool(map_specs or final_specs)
    if needs_network:
        tic = time.perf_counter()
        model = TraceModel.from_weights(args.weights, device=device, dtype=dtype)
        for line in getattr(model, "load_info", []):
            print(f"note: {line}")
        print(f"weights loaded in {time.perf_counter() - tic:.1f} s")
        stream = model.new_stream()
    for clip_index, (start, stop) in enumerate(clip_bounds if needs_network else []):
        capture: dict = {}
        tic = time.perf_counter()
        output = model.run_clip(images[start:stop], stream, settings, capture=capture)
        seconds = capture.get("seconds", {})
        print(f"clip {clip_index}: frames {start}..{stop - 1} in {time.perf_counter() - tic:.1f} s ("
              + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ")"
              + f"; {'nothing tracked' if output is None else f'{len(output.track_ids)} rows'}")
        rows_here = [(p, f - start) for p, f in enumerate(full_frames) if start <= f < stop]
        for spec in map_specs:
            tensor = capture[spec.base]
            if spec.reduction in ("full", "crop"):
                if not rows_here:
                    continue
                crop = expected[spec.key].shape[-1] if spec.reduction == "crop" else None
                piece = reduce_map(spec, tensor, [r for _, r in rows_here], crop).double().cpu().numpy()
                target = produced.setdefault(spec.key, np.full((len(full_frames),) + piece.shape[1:], np.nan))
                target[[p for p, _ in rows_here]] = piece
            else:
                piece = reduce_map(spec, tensor, None, None).double().cpu().numpy()
                target = produced.setdefault(spec.key, np.full((total,) + piece.shape[1:], np.nan))
                target[start:stop] = piece
        del capture
        for spec in final_specs:
            if spec.clip != clip_index:
                continue
            if spec.field == "none":
                finals[spec.key] = np.asarray(output is None)
            elif output is None:
                final_missing[spec.key] = "nothing tracked in this clip (the official run tracked someone)"
            else:
                finals[spec.key] = _final_value(spec.field, output, start)
    for spec in final_specs:
        if spec.clip >= len(clip_bounds):
            final_missing[spec.key] = f"clip {spec.clip} does not exist ({len(clip_bounds)} clips)"

    results: list[KeyResult] = []
    for spec in specs:
        exp = expected[spec.key]
        if spec.kind == "meta":
            results.append(KeyResult(spec.key, "meta", str(exp.shape), note=NOT_NETWORK_OUTPUTS[spec.key]))
        elif spec.kind == "skip":
            results.append(KeyResult(spec.key, "skipped", str(exp.shape), note=SKIPPED[spec.key]))
        elif spec.kind == "input":
            ours = (images.reshape(len(images), -1).sum(1, dtype=np.int64) if spec.reduction == "sum"
                    else images[:, 240:272, 240:272])
            results.append(compare_arrays(spec.key, ours, exp, rtol, exact=True))
        elif spec.kind == "map":
            ours = produced.get(spec.key)
            if ours is None or np.isnan(ours).any():
                results.append(KeyResult(spec.key, "missing", str(exp.shape), note="not produced for every frame"))
            else:
                results.append(compare_arrays(spec.key, ours, exp, rtol, exact=False))
        elif spec.kind == "final":
            if spec.key in final_missing:
                results.append(KeyResult(spec.key, "missing", str(exp.shape), note=final_missing[spec.key]))
            else:
                results.append(compare_arrays(spec.key, finals[spec.key], exp, rtol,
                                              exact=spec.field in EXACT_FINAL_FIELDS))
        else:
            results.append(KeyResult(spec.key, "missing", str(exp.shape), note="unknown key: not produced"))

    _print_table(results)
    compared = [r for r in results if r.status in ("ok", "FAIL")]
    failed = [r for r in results if r.status == "FAIL"]
    missing = [r for r in results if r.status == "missing"]
    meta = [r for r in results if r.status == "meta"]
    skipped = [r for r in results if r.status == "skipped"]
    worst = max((r.max_rel for r in compared if r.max_rel is not None), default=0.0)
    print(f"SUMMARY compared={len(compared)} ok={len(compared) - len(failed)} failed={len(failed)} "
          f"missing={len(missing)} not_network_outputs={len(meta)} skipped={len(skipped)} "
          f"total_keys={len(results)} worst_rel={worst:.3e} rtol={rtol:g}")
    print(f"peak memory: {_peak_memory_text()}")
    if args.report:
        _write_json_atomic(args.report, {"results": [asdict(r) for r in results],
                                         "summary": {"compared": len(compared), "failed": len(failed),
                                                     "missing": len(missing), "meta": len(meta),
                                                     "skipped": len(skipped), "rtol": rtol, "dtype": args.dtype}})
    return 1 if failed or missing else 0


def _peak_memory_text() -> str:
    parts = []
    try:
        import resource   # POSIX only
        scale = 1 if sys.platform == "darwin" else 1024   # ru_maxrss: bytes on macOS, KiB on Linux
        parts.append(f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20:.0f} MiB")
    except ImportError:
        parts.append("RSS unknown on this platform")
    if torch.cuda.is_initialized():
        parts.append(f"CUDA allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return ", ".join(parts)


def _print_table(results: list[KeyResult]) -> None:
    width = max(len(r.key) for r in results) if results else 10
    print(f"{'key':{width}s}  {'status':8s} {'shape':22s} {'max_abs':>11s} {'max_rel':>11s}  note")
    for r in results:
        abs_text = f"{r.max_abs:11.3e}" if r.max_abs is not None else " " * 11
        rel_text = f"{r.max_rel:11.3e}" if r.max_rel is not None else " " * 11
        print(f"{r.key:{width}s}  {r.status:8s} {r.shape:22s} {abs_text} {rel_text}  {r.note}")
