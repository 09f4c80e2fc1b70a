"""Model splitting: one model cut across two devices, two ordinary bundles joined by a described tensor.

    out/front/     the front bundle (e.g. Cortex-M firmware that sends the cut tensor as a tensor frame)
    out/back/      the back bundle (e.g. a host library that takes the cut tensor)
    out/split.json the cut (node, tensor name/shape/dtype/bytes), link, costs of every measured cut, validation
    out/README.md  how to wire the two; out/report.html the cost breakdown (auto) as a table and a plot

The cut is a node of the torch.export graph where one tensor crosses (graph_cut.py). `at="auto"` compiles and
measures the candidate cuts (costs.py) and keeps the fastest end to end. Validation runs the real chain: the
front where it runs (QEMU for Cortex-M), its frames parsed, the tensor fed to the back, the final output compared
with PyTorch's whole model.

    >>> s = edgecc.split("resnet8", targets="cortex-m4,host", at="relu__4", link="uart:921600")  # doctest: +SKIP
    >>> s.doc["cut"]["tensor"]                                                                  # doctest: +SKIP
    {'name': 'relu__4', 'shape': [1, 32, 16, 16], 'dtype': 'float32', 'bytes': 32768, ...}
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgecc.bundle import Bundle, check_replaceable, manifest_digest, staging
from edgecc.compiler.compose.costs import CutCost, Side, best, measure_cut
from edgecc.compiler.compose.graph_cut import block_boundaries, cut_candidates, split_program
from edgecc.compiler.compose.link import parse_link
from edgecc.errors import BudgetError, BundleError, CannotRunHere, ModelError, UsageError

SCHEMA = "edgecc.split/1"
SPLIT_JSON = "split.json"
WIRE_DTYPES = ("float32", "int8")


@dataclass
class Plan:
    """Everything about a split request that is checked before the model is loaded."""

    front: Side
    back: Side
    link: object  # link.Link
    wire_dtype: str
    at: str
    output: Path


@dataclass
class SplitBundle:
    """A split folder: split.json and the front and back bundles it names (each verified on load)."""

    path: Path
    doc: dict
    front: Bundle
    back: Bundle

    @classmethod
    def load(cls, path) -> SplitBundle:
        path = Path(path)
        try:
            doc = json.loads((path / SPLIT_JSON).read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{path} is not a split folder ({SPLIT_JSON}: {e}); make one with `edgecc split`") \
                from None
        if doc.get("schema") != SCHEMA:
            raise BundleError(f"{path / SPLIT_JSON}: unknown schema (want {SCHEMA})")
        halves = {}
        for side in ("front", "back"):
            b = Bundle.load(path / side)
            if manifest_digest(b.path) != doc[side]["manifest_sha256"]:
                raise BundleError(f"{path}/{side} is not the bundle {SPLIT_JSON} names (manifest hash differs); "
                                  "split the model again")
            halves[side] = b
        return cls(path, doc, halves["front"], halves["back"])


def _parse_pair(value, what: str) -> list:
    items = [x.strip() for x in value.split(",")] if isinstance(value, str) else list(value)
    if len(items) != 2 or not all(items):
        raise UsageError(f"--{what} takes two comma-separated names, FRONT,BACK (e.g. cortex-m4,host); got "
                         f"{value!r}")
    return items


def plan_split(targets, at="auto", link="uart:921600", output=None, *, backends=None, board="",
               cut_dtype="float32", force=False, model_name="model") -> Plan:
    """Check a split request (targets, backends, board, link, dtype, output) before any model is loaded."""
    from edgecc.targets import get_target

    specs = _parse_pair(targets, "targets")
    front_t, back_t = (get_target(t) for t in specs)
    names = _parse_pair(backends, "backends") if backends else [None, None]
    if cut_dtype not in WIRE_DTYPES:
        raise UsageError(f"--cut-dtype {cut_dtype!r}: expected one of {', '.join(WIRE_DTYPES)}")
    link = parse_link(link)
    sides = []
    for spec, tgt, name, b in ((specs[0], front_t, names[0], board), (specs[1], back_t, names[1], "")):
        name = name or tgt.default_backend
        tgt.backend(name)  # refuses a backend the target does not serve, with the reason
        if b:
            tgt.board(b)
        sides.append(Side(tgt, name, b or (tgt.default_board if tgt.kind == "mcu" else ""), {}, spec))
    if not isinstance(at, str) or not at:
        raise UsageError("--at takes a node name of the exported graph, or auto")
    out = Path(output) if output else Path("build") / f"{model_name}-split-{front_t.name}-{back_t.name}"
    check_split_replaceable(out, force)
    return Plan(sides[0], sides[1], link, cut_dtype, at, out)


def check_split_replaceable(out: Path, force: bool) -> None:
    """A split may replace an empty folder or a split folder that loads (its bundles verify); else as compile."""
    if not force and out.is_dir() and not out.is_symlink() and (out / SPLIT_JSON).is_file():
        try:
            SplitBundle.load(out)
            return
        except BundleError as e:
            raise BundleError(f"output {out} is a split folder that does not verify ({e}); pass --force to replace "
                              "it, or choose another -o") from None
    check_replaceable(out, force)


def _default_name(model) -> str:
    """What the default output folder is named after, before the model is loaded (a zoo name, a file's stem)."""
    if not isinstance(model, (str, Path)):
        return type(model).__name__.lower()
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", Path(str(model).split(":")[0]).stem).lstrip(".-") or "model"


def split(model, targets="cortex-m4,host", at="auto", link="uart:921600", output=None, *, example_inputs=None,
          input_shapes=None, backends=None, board="", cut_dtype="float32", allow_pickle=False, name=None,
          force=False, validate=True, log=None, note=None) -> SplitBundle:
    """Cut `model` in two at `at` (a graph node, or "auto": the fastest measured cut over `link`) and compile the
    front for targets[0] and the back for targets[1]; returns the validated SplitBundle.

        >>> edgecc.split("resnet8", "cortex-m4,host", link="ble:1M", output="build/r8-split")  # doctest: +SKIP
    """
    from edgecc.compiler.frontends import load_model

    log = log or (lambda msg: None)
    plan = plan_split(targets, at, link, output, backends=backends, board=board, cut_dtype=cut_dtype, force=force,
                      model_name=name or _default_name(model))
    loaded = load_model(model, example_inputs, input_shapes, name=name, allow_pickle=allow_pickle)
    if loaded.kind == "onnx":
        raise ModelError(f"{loaded.source} is an ONNX model; splitting cuts a torch.export graph, so give the PyTorch "
                         "model (zoo name, file.py:factory or .pt2); ONNX models are not split yet")
    ep = loaded.exported_program()
    cuts = cut_candidates(ep)
    if not cuts:
        raise ModelError(f"{loaded.name} has no node where a single tensor crosses; it cannot be split in two")
    costs = None
    if plan.at == "auto":
        costs = _measure(loaded, ep, block_boundaries(cuts), plan, log)
        chosen = best(costs, plan.link)
        if chosen is None:
            raise _nothing_fits(costs, plan)
        cut = chosen.cut
        log(f"auto: the cut at {cut.node} is the fastest over {plan.link.spec} "
            f"({chosen.total_s(plan.link) * 1e3:.1f} ms end to end)")
    else:
        split_program(ep, plan.at)  # a node that does not exist or a cut several tensors cross: one-line errors
        cut = next(c for c in cuts if c.node == plan.at)
    return _write(loaded, ep, cut, plan, costs, validate, log, note)


def _nothing_fits(costs: list[CutCost], plan: Plan):
    first = next((c.status for c in costs if c.status != "ok"), "no cut could be measured")
    return BudgetError(f"no candidate cut's front fits {plan.front.target.name}/{plan.front.board}: "
                       f"{first.removeprefix('does not fit: ')}")


def _measure_side(plan: Plan) -> Side:
    """The front as auto measures it: a microcontroller front on a QEMU board of the same core (the instruction
    count), timed at the chosen board's clock."""
    tgt = plan.front.target
    if tgt.kind != "mcu" or tgt.board(plan.front.board or None).qemu_machine:
        return plan.front
    qemu = next((b for b in tgt.boards.values() if b.qemu_machine), None)
    if qemu is None:
        raise CannotRunHere(f"auto needs the front's instruction count, and {tgt.name} has no QEMU board; give --at")
    return Side(tgt, plan.front.backend, qemu.name, plan.front.options, plan.front.spec)


def _measure(loaded, ep, cuts, plan: Plan, log) -> list[CutCost]:
    log(f"auto: measuring {len(cuts)} candidate cut(s): {', '.join(c.node for c in cuts)}")
    measure_front = _measure_side(plan)
    costs = []
    with tempfile.TemporaryDirectory(prefix="edgecc-split-measure-") as tmp:
        for c in cuts:
            work = Path(tmp) / c.node
            if measure_front is not plan.front:  # the chosen board must hold the front; QEMU's board counts
                try:
                    build_halves(loaded, ep, c, plan.front, plan.back, plan.wire_dtype, work / "fit",
                                 validate=False, front_only=True)
                except BudgetError as e:
                    costs.append(CutCost(c, plan.wire_dtype, status=f"does not fit: {e}"))
                    continue
            build = functools.partial(_build_for_measure, loaded, ep, measure_front, plan)
            try:
                costs.append(measure_cut(build, c, plan.front, plan.back, plan.wire_dtype, work, log))
            except CannotRunHere as e:
                raise CannotRunHere(f"auto needs each candidate's cost, and it cannot be measured here ({e}); "
                                    "give --at NODE") from None
    return costs


def _build_for_measure(loaded, ep, front: Side, plan: Plan, cut, workdir, validate=False):
    fb, bb, _ = build_halves(loaded, ep, cut, front, plan.back, plan.wire_dtype, workdir, validate=validate)
    return fb, bb


def build_halves(loaded, ep, cut, front: Side, back: Side, wire_dtype: str, root: Path, validate: bool = True,
                 front_only: bool = False, note=None):
    """Compile the front and back of `cut` into root/front and root/back through the normal driver; returns
    (front bundle, back bundle, CutQuant or None)."""
    import torch

    from edgecc.compiler.compose.cut_quant import calibrate, dequantized_back, quantized_front
    from edgecc.compiler.driver import compile

    front_mod, back_mod = split_program(ep, cut.node)
    inputs = tuple(torch.from_numpy(a) for a in loaded.example_inputs)
    with torch.no_grad():
        cut_value = front_mod(*inputs).detach()
    q, tol = None, None
    if wire_dtype == "int8":
        q = calibrate([cut_value.numpy()], "the example input")
        front_mod, back_mod = quantized_front(front_mod, q), dequantized_back(back_mod, q)
        cut_value = torch.from_numpy(q.quantize(cut_value.numpy()))
        tol = {"atol": 1.0, "rtol": 0.0}  # a value on a rounding boundary may land one int8 step away
    fb = compile(front_mod, inputs, target=front.spec, backend=front.backend,
                 output=root / "front", board=front.board, name=f"{loaded.name}-front", validate=validate,
                 options={**front.options, **_frame_options(front)}, tolerance=tol, note=note)
    if front_only:
        return fb, None, q
    bb = compile(back_mod, (cut_value,), target=back.spec, backend=back.backend,
                 output=root / "back", name=f"{loaded.name}-back", validate=validate, options=back.options,
                 note=note)
    return fb, bb, q


def _frame_options(side: Side) -> dict:
    """A microcontroller front sends its output as tensor frames: in the semihosting output file, and on UART0 too
    where the board file names one the runtime drives (runtime/c/include/edgecc/frame.h)."""
    if side.backend != "micro":
        return {}
    board = side.target.board(side.board or None)
    return {"frames": "uart" if board.uart == "cmsdk-apb" else "file"}


def _write(loaded, ep, cut, plan: Plan, costs, validate: bool, log, note) -> SplitBundle:
    from edgecc.compiler.compose import split_doc
    from edgecc.compiler.compose.split_check import check_end_to_end

    with staging(plan.output, note=note, force=True) as tmp:
        log(f"compiling the front ({cut.front_ops} ops) for {plan.front.target.name} and the back "
            f"({cut.back_ops} ops) for {plan.back.target.name}, cut at {cut.node}")
        fb, bb, q = build_halves(loaded, ep, cut, plan.front, plan.back, plan.wire_dtype, tmp, validate, note=note)
        validation = check_end_to_end(loaded, ep, cut, fb, bb, q) if validate else \
            {"status": "skipped (--no-validate)"}
        doc = split_doc.document(loaded, cut, plan, fb, bb, q, costs, validation)
        (tmp / SPLIT_JSON).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        (tmp / "README.md").write_text(split_doc.wiring(doc))
        if costs is not None:
            from edgecc.runtime.report_split import split_report_html

            (tmp / "report.html").write_text(split_report_html(doc))
    return SplitBundle.load(plan.output)
