"""The compile-side commands: compile, tune, build (the matrix), targets, models, verify, run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgecc.compiler.cli.output import log_for, note, output_paths, save_npy, table
from edgecc.errors import EdgeccError, UsageError


def cmd_compile(args) -> int:
    from edgecc.compiler.driver import compile
    from edgecc.manifest import ValidationStatus
    from edgecc.runtime.report import check_text

    bundle = compile(args.model, target=args.target, backend=args.backend, output=args.output,
                     validate=not args.no_validate, extra_flags=args.flag, board=args.board,
                     input_shapes=args.input_shape, allow_pickle=args.allow_pickle,
                     keep_intermediates=args.keep_intermediates, name=args.name, options=dict(args.option),
                     quantize=args.quantize or "", calibration=args.calibration, force=args.force,
                     log=log_for(args), note=note, precision=args.precision, input_ranges=args.input_range,
                     validate_with=args.validate_with, validate_samples=args.validate_samples,
                     squeeze=args.squeeze, squeeze_data=args.squeeze_data)
    if args.json:
        print(json.dumps(bundle.manifest, indent=2))
        return 0
    m = bundle.meta
    v = m.validation
    n = v.get("samples", 1)
    check = (f"validated vs {v.get('reference')}"
             + (f" on {n} samples ({v.get('within_tolerance', 1):.0%} within tolerance)" if n > 1 else "")
             + f": {check_text(v.to_dict())}"
             + (f", top-1 {v.get('top1_agreement'):.0%}" if v.get("top1_agreement") is not None else "")
             if v.status is ValidationStatus.PASSED else v.text)
    mem = m.artifact.memory
    if mem:  # microcontrollers: what counts is what lands in flash and RAM, against the board
        size = (f"flash {mem.flash_bytes / 1024:.1f}/{mem.board_flash_bytes / 1024:.0f} KiB, RAM "
                f"{mem.ram_bytes / 1024:.1f}/{mem.board_ram_bytes / 1024:.0f} KiB, "
                f"arena {mem.arena_bytes / 1024:.1f} KiB")
    else:
        size = f"{m.files[m.artifact.entry].size / 1024:.0f} KiB"
    print(f"{bundle.path}  ({m.artifact.entry}, {size}, compiled in {m.compile['seconds']:.1f}s; {check})")
    patch = mem.extra.get("patch") if mem else None
    if patch:  # --option patch_stages: what the patches saved and what they recompute
        print(f"patch_stages={patch['patch_stages']} ({patch['tiles']} tiles): arena "
              f"{patch['arena_bytes'] / 1024:.1f} KiB, unpatched {patch['arena_bytes_unpatched'] / 1024:.1f} KiB "
              f"({patch['ratio_vs_unpatched_arena']:.2f}x; tensor-level lower bound "
              f"{patch['tensor_level_lower_bound_bytes'] / 1024:.1f} KiB); recomputed MACs "
              f"+{patch['recomputed_macs_pct_of_model']:.1f}% of the model's")
    q = m.extra.get("quantization")
    if q:
        a = q["accuracy"]
        acc = (f"top-1 on {a['samples']} held-out {a['dataset']} images: fp32 {a['fp32_pytorch']:.2%}, int8 artifact "
               + (f"{a['int8_artifact']:.2%}" if isinstance(a["int8_artifact"], float) else a["int8_artifact"])
               if isinstance(a, dict) else a)
        print(f"int8: {acc}; weights {q['weights_bytes']['fp32']} -> {q['weights_bytes']['int8']} bytes")
    p = m.extra.get("precision")
    if p:
        a = p["accuracy"]
        prec = p["precision"]
        print(f"{prec}: " + (f"top-1 on {a['samples']} held-out {a['dataset']} images: fp32 {a['fp32_top1']:.2%}, "
                             f"{prec} artifact {a[prec + '_top1']:.2%}" if isinstance(a, dict) else a))
    if m.extra.get("squeeze") or args.profile:
        from edgecc.compiler.cli.squeeze_commands import print_profile, print_squeeze

        if m.extra.get("squeeze"):
            print_squeeze(m.extra["squeeze"])
        if args.profile:
            print_profile(bundle)
    return 0


def cmd_tune(args) -> int:
    from edgecc.compiler.backends.tvm import import_relax
    from edgecc.compiler.backends.tvm import tuning as tvm_tune
    from edgecc.compiler.frontends import load_model
    from edgecc.runtime.devices import parse_device
    from edgecc.targets import get_target

    target = get_target(args.target)
    device = parse_device(args.device)
    tvm_target, cross_compiler = tvm_tune.check_tunable(target, device)
    model = load_model(args.model, input_shapes=args.input_shape, allow_pickle=args.allow_pickle)
    mod, _ = import_relax(model)
    db = Path(args.database) if args.database else tvm_tune.database_dir(target.name)
    t0 = time.perf_counter()
    result = tvm_tune.tune(mod, tvm_target, db, args.trials, seed=args.seed, device=device,
                           cross_compiler=cross_compiler, timeout=args.timeout,
                           work_dir=Path(args.work_dir) if args.work_dir else None)
    if result["resumed_from"]:
        print(f"resumed: {result['resumed_from']} of {result['trials']} trials were measured by a stopped run "
              f"({result['work_dir']})")
    print(f"tuned {model.name} for {target.name} on {result['measured_on']} (num-cores {result['num_cores']}): "
          f"{result['trials']} trials in {time.perf_counter() - t0:.0f}s; database {db}: "
          f"{result['records_before']} -> {result['records_after']} records (edgecc compile --backend tvm applies it)")
    return 0


def cmd_build(args) -> int:
    from edgecc.compiler.matrix import load_config, plan_cells, run_matrix
    from edgecc.compiler.matrix_ray import RayExecutor, parse_executor
    from edgecc.compiler.matrix_shards import cell_costs, merge_command, partition, shard_meta

    if args.merge:
        return _merge(args, merge_command)
    kind, address = parse_executor(args.executor)
    cfg = load_config(args.config)
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None  # noqa: E731
    cells = plan_cells(split(args.models) or cfg.get("models"), split(args.targets) or cfg.get("targets"),
                       split(args.backends) or cfg.get("backends"))
    output = args.output or cfg.get("output", "build")
    if args.validate_with:
        from edgecc.models.datasets import DATASETS

        if args.validate_with not in DATASETS and not Path(args.validate_with).exists():
            raise UsageError(f"--validate-with {args.validate_with}: no such file or folder, and not a dataset name "
                             f"(known: {', '.join(DATASETS)})")
    for c in cells:
        c.validate_with, c.validate_samples = args.validate_with, args.validate_samples
    meta = {}
    if args.shard:
        meta = shard_meta(cells, args.shard, args.costs)
        cells = partition(cells, args.shard.count, cell_costs(cells, args.costs))[args.shard.index - 1]
    elif args.costs:
        raise UsageError("--costs balances shards: use it with --shard K/N")
    executor = None
    if kind == "ray":
        executor = RayExecutor(address, cpus_per_cell=args.cpus_per_cell, timeout=args.ray_timeout,
                               transfer=args.ray_transfer)
        executor.connect()  # before any work: an unreachable cluster is one line, not a summary of failures
    progress = None if args.quiet else "bar" if sys.stderr.isatty() else "lines"
    summary = run_matrix(cells, output, args.jobs or cfg.get("jobs"), progress=progress, executor=executor, meta=meta)
    print((Path(output) / "summary.md").read_text(), end="")
    failed = summary["counts"]["failed"]
    if failed:
        raise EdgeccError(f"{failed} of {len(cells)} cell(s) failed; see {Path(output) / 'summary.json'}")
    return 0


def _merge(args, merge_command) -> int:
    """`edgecc build merge SUMMARY.json...`"""
    if args.merge == ["merge"]:
        raise UsageError("`edgecc build merge` needs the shard summaries: edgecc build merge s1/summary.json "
                         "s2/summary.json ...")
    if args.merge[0] != "merge":
        raise UsageError(f"unexpected argument {args.merge[0]!r}: `edgecc build` takes options, or "
                         "`edgecc build merge SUMMARY.json...` (the summaries of the --shard jobs)")
    output = args.output or "build"
    _, problem = merge_command(args.merge[1:], output)
    print((Path(output) / "summary.md").read_text(), end="")
    if problem:
        raise EdgeccError(problem)
    return 0


def cmd_targets(args) -> int:
    from edgecc.targets import get_target, list_targets

    if args.action == "show":
        if not args.name:
            raise EdgeccError("`edgecc targets show` needs a target name; see `edgecc targets`")
        t = get_target(args.name)
        print(json.dumps(t.to_dict(), indent=2, default=str))
        return 0
    targets = list_targets()
    if args.json:
        print(json.dumps({n: t.to_dict() for n, t in targets.items()}, indent=2, default=str))
        return 0
    rows = [(n, t.device, ", ".join(b + ("*" if b == t.default_backend else "") for b, c in t.backends.items()
                                     if not c.refused),
             ", ".join(f"{b} (refused)" for b, c in t.backends.items() if c.refused)) for n, t in targets.items()]
    table(["target", "device", "backends (*default)", "refused"], rows)
    return 0


def cmd_models(args) -> int:
    from edgecc.models import count_params_and_macs, list_models

    rows = []
    for name, spec in list_models().items():
        module, inputs = spec.factory()
        params, macs = count_params_and_macs(module, inputs)
        rows.append((name, " ".join("x".join(map(str, s)) for s in spec.input_shapes), f"{params / 1e6:.3f} M",
                     f"{macs / 1e6:.1f} M", spec.description))
    if args.json:
        keys = ["name", "input", "params", "macs", "description"]
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2))
        return 0
    table(["model", "input", "params", "MACs", "description"], rows)
    return 0


def cmd_verify(args) -> int:
    from edgecc.bundle import Bundle

    bundle = Bundle.load(args.bundle, verify=False)
    n = bundle.verify()
    print(f"{bundle.path}: ok ({n} files match their sha256)")
    return 0


def cmd_run(args) -> int:
    import numpy as np

    from edgecc.bundle import Bundle
    from edgecc.errors import ModelError

    bundle = Bundle.load(args.bundle)
    if args.input:
        inputs = []
        for f in args.input:
            if not Path(f).is_file():
                raise ModelError(f"input file {f} does not exist")
            try:
                inputs.append(np.load(f, allow_pickle=False))
            except ValueError as e:
                raise ModelError(f"{f} is not a plain .npy array: {e}") from None
    else:
        inputs = bundle.reference_inputs()
    outputs = bundle.runner().run(inputs)
    paths = output_paths(args.output, len(outputs)) if args.output else []
    for i, o in enumerate(outputs):
        if paths:
            save_npy(paths[i], o)
            print(f"output {i}: shape {list(o.shape)} {o.dtype} -> {paths[i]}")
        else:
            flat = o.ravel()
            head = ", ".join(f"{x:.5g}" for x in flat[:8]) + (", ..." if flat.size > 8 else "")
            extra = f"  argmax {int(np.argmax(o))}" if o.ndim == 2 and o.shape[0] == 1 else ""
            print(f"output {i}: shape {list(o.shape)} {o.dtype} [{head}]{extra}")
    return 0


