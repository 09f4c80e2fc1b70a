"""The device-side commands: bench, deploy, report (and its compare gate), trtexec-report."""

from __future__ import annotations

import json
from pathlib import Path

from edgecc.compiler.cli.output import Progress, log_for, table, write
from edgecc.errors import EdgeccError


def _ssh_options(args):
    from edgecc.runtime.devices import SshOptions

    return SshOptions(identity=args.identity, known_hosts=args.known_hosts, extra=args.ssh_option,
                      remote_dir=args.remote_dir, venv=args.venv, python=args.device_python, pip_args=args.pip_arg)


def cmd_bench(args) -> int:
    from edgecc.bundle import Bundle
    from edgecc.compiler.frontends import load_model
    from edgecc.runtime.baselines import BASELINES, run_baselines
    from edgecc.runtime.devices import bench_on_device, describe, parse_device
    from edgecc.runtime.report import (
        BENCH_COLUMNS,
        bench_rows,
        environment,
        failed_record,
        make_report,
        run_record,
        to_markdown,
    )

    device = parse_device(args.device)
    names = [n.strip() for n in args.baselines.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise EdgeccError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    bundles = [Bundle.load(p) for p in args.bundle]  # all verified before any is timed
    remote = device is not None and device.kind in ("ssh", "rpc")
    runs, errors = [], []
    with Progress(args, "benchmarking", len(bundles)) as step:
        for bundle in bundles:
            dev = describe(device, bundle)
            step(f"{bundle.path.name} on {dev['spec']}")
            try:
                timing = bench_on_device(bundle, device, warmup=args.warmup, iters=args.iters, threads=args.threads,
                                         ssh=_ssh_options(args), chunk=args.chunk or (10 if remote else 0),
                                         timeout=args.timeout, retries=args.retries)
            except EdgeccError as e:
                if len(bundles) == 1:
                    raise
                errors.append(e)
                runs.append(failed_record(bundle, dev, str(e)))
                continue
            base = run_baselines(bundle, names, dev["kind"], args.warmup, args.iters, args.threads,
                                 timing.stats()["p50"] if timing.unit == "ms" else None,
                                 load_model=load_model) if names else []
            runs.append(run_record(bundle, timing, dev, base))
    doc = make_report(runs, environment(), args.warmup, args.iters)
    first = bundles[0].path.resolve()  # `bench .` names its report after the folder, not ''
    out = Path(args.json_out) if args.json_out else (
        first.with_name(first.name + ".bench.json") if len(bundles) == 1 else first.parent / "bench.json")
    write(out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        write(args.markdown, to_markdown(doc))
    if args.html:
        from edgecc.runtime.report_html import to_html

        write(args.html, to_html(doc))
    if args.format == "json":
        print(json.dumps(doc))
    elif args.format == "markdown":
        print(to_markdown(doc), end="")
    else:
        table(BENCH_COLUMNS, bench_rows(runs))
        methods = sorted({r["timing"]["method"] for r in runs if r["timing"]})
        print(f"method: {'; '.join(methods)}; warm-up {args.warmup}, iterations {args.iters}; raw samples -> {out}")
    if errors:
        raise EdgeccError(f"{len(errors)} of {len(bundles)} bundle(s) failed: {errors[0]} (report: {out})")
    return 0


def cmd_deploy(args) -> int:
    from edgecc.bundle import Bundle
    from edgecc.runtime.deploy import deploy
    from edgecc.runtime.devices import parse_device

    device = parse_device(args.device)
    bundle = Bundle.load(args.bundle)
    done = deploy(bundle, device, _ssh_options(args), timeout=args.timeout, log=log_for(args))
    if args.json:
        print(json.dumps(done, indent=2))
        return 0
    err = done.get("max_abs_error")
    check = f"; one inference matches the reference (max abs err {err:.1e})" if err is not None else ""
    extra = f" (runtime {done['runtime']} in {done['venv']}: {done['install']}; {len(done['files_copied'])} file(s) " \
            f"copied, {done['files_unchanged']} unchanged)" if "runtime" in done else ""
    ran = f" (ran in {done['where']})" if done.get("where") else ""
    print(f"{done.get('artifact', done['location'])}{extra}{ran}{check}")
    return 0


def cmd_report(args) -> int:
    from edgecc.runtime.report import compare, load_report, load_reports, parse_percent, to_markdown

    if args.paths[0] == "compare":
        if len(args.paths) != 3:
            from edgecc.errors import UsageError

            raise UsageError("usage: edgecc report compare BASE.json NEW.json [--max-regression 10%]")
        limit = parse_percent(args.max_regression)
        failures, lines = compare(load_report(Path(args.paths[1])), load_report(Path(args.paths[2])), limit,
                                  args.max_error_change)
        for line in lines:
            print(f"ok    {line}")
        for line in failures:
            print(f"FAIL  {line}")
        if failures:
            from edgecc.errors import RegressionError

            raise RegressionError(f"{len(failures)} regression(s) beyond the gate (max regression {limit:.0%}): "
                              f"{failures[0]}")
        print(f"no regression beyond {limit:.0%} in {len(lines)} run(s)")
        return 0
    from edgecc.runtime.report_html import to_html

    doc = load_reports(args.paths)
    if args.json_out:
        write(args.json_out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        md = to_markdown(doc)
        if args.markdown == "-":
            print(md, end="")
        else:
            write(args.markdown, md)
    out = Path(args.output or "report.html")
    write(out, to_html(doc))
    if args.markdown != "-":
        print(f"{out}  ({len(doc['runs'])} run(s) from {len(doc['sources'])} report(s))")
    return 0


def cmd_trtexec_report(args) -> int:
    from edgecc.runtime.trtexec_report import print_report, read_report

    report = read_report(args.log, args.times, args.profile)
    if args.json_out:
        write(args.json_out, json.dumps(report, indent=2) + "\n")
    print_report(report, args.layers)
    return 0


