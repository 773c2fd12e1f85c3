"""Training: ``train(config, data, out)`` -> a run folder with config, split, log and checkpoints.

The same function runs in one process or under ``torchrun`` (data parallel, gloo on
CPU, nccl on GPU); only rank 0 logs, validates and saves. Randomness is derived from
(seed, epoch, item), so a run killed and resumed from its last checkpoint continues
exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flairseg import augment, checkpoint, distributed
from flairseg.config import (
    TASK_SPECS,
    TrainConfig,
    first_difference,
    from_dict,
    is_whole_number,
    parse_json,
    replace,
    shown_value,
)
from flairseg.data import (
    DATA_FILE,
    Prepared,
    Split,
    check_data,
    refuse_lost_record,
    data_record,
    epoch_items,
    load_split,
    make_split,
    prepare_case,
    read_json,
    save_split,
)
from flairseg.errors import ConfigError, InputError, WeightsError
from flairseg.inference import InferenceOptions, limit_threads, resolve_device, segment_prepared
from flairseg.io import index_cases, read_case, read_label
from flairseg.losses import loss_function
from flairseg.metrics import case_metrics
from flairseg.model import UNet
from flairseg.outputs import InputPaths, atomic_dir, atomic_file, check_output, held_folder

LOG_FIELDS = ("epoch", "train_loss", "val_dice_mean", "val_dice_median", "best_epoch", "seconds")
START_FILE = "start.json"  # the weights a run started from: a resumed run starts from them too


@dataclass(frozen=True)
class TrainResult:
    """Where a run lives and how it ended."""

    run: Path
    best_epoch: int
    best_dice: float
    epochs: int
    main_process: bool = True  # False on the other torchrun ranks, which report nothing
    average_dice: float | None = None  # validation Dice of the tail average (``average_last``), if made
    best_is_average: bool = False


def _prepare(
    paths: Sequence[Path], config: TrainConfig, quiet: bool, what: str
) -> tuple[list[Prepared], list[Prepared] | None]:
    """The cases as model inputs and, when ``config.skull_strip`` asks for them, their skull-stripped copies."""
    pairs = list(_each_prepared(paths, config, quiet, what))
    stripped = [copy for _, copy in pairs if copy is not None]
    return [prepared for prepared, _ in pairs], (stripped if config.skull_strip else None)


def _each_prepared(
    paths: Sequence[Path], config: TrainConfig, quiet: bool, what: str
) -> Iterator[tuple[Prepared, Prepared | None]]:
    """Each case as model inputs and, when ``config.skull_strip`` asks for it, its skull-stripped copy, one case at
    a time (a check that keeps what it needs of each holds one case, not all)."""
    from tqdm import tqdm

    for path in tqdm(paths, desc=f"prepare {what}", unit="case", disable=quiet, file=sys.stderr):
        case = read_case(path, masks="required", mask_suffix=TASK_SPECS[config.task].label_suffix)
        brain = (
            read_label(case, "_brain")
            if config.preprocess.variant == "paper-abnormality" or config.skull_strip
            else None
        )
        if config.skull_strip and brain is None:
            raise InputError(
                f"case {case.case_id} has no _brain labels, which skull_strip > 0 needs; add them or set skull_strip=0"
            )
        prepared = prepare_case(
            case,
            config.task,
            config.preprocess,
            brain=brain if config.preprocess.variant == "paper-abnormality" else None,
        )
        yield (
            prepared,
            (prepare_case(case, config.task, config.preprocess, brain=brain) if config.skull_strip else None),
        )


def training_batch(
    cases: Sequence[Prepared],
    stripped: Sequence[Prepared] | None,
    items: np.ndarray,
    config: TrainConfig,
    epoch: int,
    first_index: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training batch ``items`` ((case, slice) pairs) on ``device``, augmented there; each item draws from its own
    seeded generator, the scanner-like intensity transforms from the first item's.
    """
    images, masks, draws, rngs, flair_only = [], [], [], [], []
    for offset, (c, s) in enumerate(items):
        rng = np.random.default_rng([config.seed, epoch, first_index + offset])
        draws.append(augment.draw(rng, config.rotation, config.scale, config.flip, config.intensity))
        source, at = cases[c], s
        if stripped is not None and rng.random() < config.skull_strip:
            source, at = _same_slice(cases[c], stripped[c], s)
        image, mask = source.inputs[at], source.target[at]
        if config.slice_mix and rng.random() < config.slice_mix:
            image = _mixed_with_neighbour(source, at, rng)
        flair_only.append(bool(config.flair_only) and rng.random() < config.flair_only)
        if flair_only[-1]:
            image = augment.flair_only(image)
        images.append(image)
        masks.append(mask)
        rngs.append(rng)
    image_batch = torch.from_numpy(np.stack(images).astype(np.float32, copy=False)).to(device)
    mask_batch = torch.from_numpy(np.stack(masks).astype(np.float32)).to(device)
    image_batch, mask_batch = augment.apply(image_batch, mask_batch, draws)
    scanner = augment.scanner_transforms(config.gamma, config.bias_field, config.noise, config.blur)
    if scanner is not None:  # on whole slices: a bias field spans the slice, gamma pivots on its background
        image_batch = augment.apply_scanner(image_batch, scanner, int(rngs[0].integers(2**31)))
        copies = [i for i, copied in enumerate(flair_only) if copied]
        if copies:  # noise must not tell the FLAIR copies apart: a FLAIR-only input's channels are equal
            image_batch[copies, :3] = image_batch[copies, 1:2].expand(-1, 3, -1, -1)
    if config.patch:
        image_batch, mask_batch = _crop(rngs, image_batch, mask_batch, config.patch, config.patch_tumour)
    return image_batch.contiguous(memory_format=torch.channels_last), mask_batch[:, None].contiguous()


def _same_slice(prepared: Prepared, other: Prepared, index: int) -> tuple[Prepared, int]:
    """Slice ``index`` of ``prepared`` located in ``other``, a differently prepared copy of the same case:
    (other, its index there).

    The two may keep different input slices (the port variant drops empty end slices); a slice
    that ``other`` lacks (no brain on it) stays where it was: (prepared, index).
    """
    at = index + prepared.transform.slices[0] - other.transform.slices[0]
    return (other, at) if 0 <= at < len(other.inputs) else (prepared, index)


def _mixed_with_neighbour(prepared: Prepared, index: int, rng: np.random.Generator) -> np.ndarray:
    """Input slice ``index`` blended with the slice above or below (weight uniform in [0, 0.5]): what linear
    interpolation to thinner slices makes between two acquired ones; the mask stays the slice's own (the
    interpolated mask thresholded at 0.5). A slice without that neighbour comes back as it is.
    """
    neighbour = index + (1 if rng.random() < 0.5 else -1)
    weight = rng.uniform(0.0, 0.5)
    if not 0 <= neighbour < len(prepared.inputs):
        return prepared.inputs[index]
    return (1 - weight) * prepared.inputs[index] + weight * prepared.inputs[neighbour]


def _crop(
    rngs: Sequence[np.random.Generator], images: torch.Tensor, masks: torch.Tensor, patch: int, tumour_share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """patch x patch crops, each centred on a random foreground pixel with probability ``tumour_share``."""
    height, width = masks.shape[1:]  # patch <= both: checked when the run is planned
    corners = []
    for rng, mask in zip(rngs, (masks > 0.5).cpu().numpy()):
        if mask.any() and rng.random() < tumour_share:
            rows, cols = np.nonzero(mask)
            pick = rng.integers(len(rows))
            corners.append(
                (
                    int(np.clip(rows[pick] - patch // 2, 0, height - patch)),
                    int(np.clip(cols[pick] - patch // 2, 0, width - patch)),
                )
            )
        else:
            corners.append((int(rng.integers(0, height - patch + 1)), int(rng.integers(0, width - patch + 1))))
    return (
        torch.stack([images[i, :, top : top + patch, left : left + patch] for i, (top, left) in enumerate(corners)]),
        torch.stack([masks[i, top : top + patch, left : left + patch] for i, (top, left) in enumerate(corners)]),
    )


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    images: torch.Tensor,
    masks: torch.Tensor,
    bfloat16: bool,
) -> float:
    """One optimisation step on a batch; the network in bfloat16 autocast when asked, the loss in float32. Returns
    the loss.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = net(images)
    loss = loss_fn(logits.float(), masks)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def validate(
    model: torch.nn.Module, cases: Sequence[Prepared], config: TrainConfig, device: torch.device
) -> list[float]:
    """Per-case 3-D Dice on each case's own grid, after postprocessing (as users get it)."""
    dice = []
    for prepared in cases:
        mask = segment_prepared(
            model, prepared, config.task, config.threshold, InferenceOptions(config.batch_size, device)
        ).mask
        dice.append(case_metrics(prepared.case_id, mask, prepared.truth).dice)
    return dice


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at a global step: constant, or linear warm-up then cosine decay to 1 % of ``lr``."""
    if config.schedule == "constant":
        return config.lr
    if config.schedule != "cosine":
        raise InputError(f"unknown schedule {config.schedule!r}; choose constant or cosine")
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _plan_run(out: Path, config: TrainConfig, paths: dict[str, Path], resume: bool) -> tuple[TrainConfig, Split]:
    """The run's config and split (a resumed run's own), checked; nothing is written yet."""
    if resume:
        return _resumed_plan(out, paths)
    _check_recipe(config)
    split = make_split(sorted(paths), config.scheme, config.folds, config.fold, config.validation_cases, config.seed)
    return config, split


def _resumed_plan(out: Path, paths: dict[str, Path]) -> tuple[TrainConfig, Split]:
    """A resumed run's config and split, checked against its other files and the data (case id -> path)."""
    if not (out / "config.json").is_file() or not (out / "split.json").is_file():
        raise InputError(f"{out} is not a flairseg run folder (no config.json / split.json) to resume")
    config = recorded_recipe(out)
    split = load_split(out / "split.json")
    _check_split_cases(split, paths)
    _check_recipe(config)
    if checkpoint.paths_of(out / "last")[1].is_file():  # its record now, before the cases are prepared
        _check_last_record(out, config, split, state_record(out, config.task))  # the tensors are read when resuming
    else:
        _check_never_checkpointed(out)
    check_data(out, paths)
    return config, split


def _check_split_cases(split: Split, paths: dict[str, Path]) -> None:
    """Refuse a split whose training or validation cases are not all in the data (case id -> path)."""
    missing = sorted(set(split.train + split.validation) - set(paths))
    if missing:
        raise InputError(f"the data folder lacks {len(missing)} cases of the run's split (e.g. {missing[0]})")


def state_record(out: Path, task: str) -> dict[str, object]:
    """A run's training-state record (last.json), read and checked: a JSON object of a ``task`` run with epochs and
    counts a run writes. What ``train --resume`` and ``cv`` (whether a fold is finished) read it with."""
    what = str(out / "last.json")
    record = read_json(out / "last.json")
    if not isinstance(record, dict):
        raise InputError(f"{what} is not a training-state record (a JSON object)")
    checkpoint.check_state_record(record, what, task)
    return record


def _check_last_record(out: Path, config: TrainConfig, split: Split, record: dict[str, object]) -> None:
    """A run's training-state record (last.json, read by :func:`state_record`): made under the recipe its
    config.json holds now (a recipe edited in between would be only partly used) and the split its split.json holds
    now, its best model still there."""
    what = str(out / "last.json")
    check_recorded_split(out, split, record)
    if "recipe" in record:  # a state saved before states recorded their recipe is taken as the config's
        changed = first_difference(_recipe_of(record["recipe"], f"{what} (its recipe)"), config)
        if changed is not None:
            raise InputError(
                f"{out / 'config.json'} was edited after the run's last checkpoint ({changed[0]} {changed[1]} -> "
                f"{changed[2]}); restore it, or start a new run"
            )
    missing = [path.name for path in reversed(checkpoint.paths_of(out / "best")) if not path.is_file()]
    if record["best_epoch"] >= 0 and missing:
        raise InputError(
            f"{out} lacks {missing[0]}, the model of its best epoch ({record['best_epoch'] + 1}); restore it, or "
            "train the run again with --overwrite"
        )
    if record["best_epoch"] >= 0:
        _check_best(out, config.task)
        check_models_of_split(out, split)


def check_models_of_split(run: Path, split: Split) -> None:
    """Refuse a run whose model (best.json, and its tail average where there is one) records another split than the
    run's (another run's or fold's model restored or copied into it): it may have trained on the run's held-out cases,
    which cv would predict as out of fold and a resumed run would report as its own."""
    for name in ("best.json", "average.json"):
        path = run / name
        if not path.is_file():
            continue
        record = read_json(path)
        recorded = record.get("split") if isinstance(record, dict) else None
        if recorded != json.loads(json.dumps(dataclasses.asdict(split))):
            raise InputError(
                f"{path} records another split than {run / 'split.json'} (another run's model?): it may have trained "
                "on this run's held-out cases; restore the run's own model, or train it again"
            )


def check_recorded_split(out: Path, split: Split, record: dict[str, object]) -> None:
    """Refuse a split.json edited after the last checkpoint (a state saved before states recorded their split is
    taken as the file's): the epochs left would train on cases the epochs before held out, or the reverse; a
    finished fold kept by ``cv`` would be scored on cases it trained on."""
    now = json.loads(json.dumps(dataclasses.asdict(split)))  # as last.json records it: lists, not tuples
    if "split" in record and record["split"] != now:
        raise InputError(
            f"{out / 'split.json'} was edited after the run's last checkpoint ({_split_change(record['split'], now)}); "
            "restore it, or start a new run"
        )


def _split_change(recorded: object, now: dict[str, object]) -> str:
    """The first difference between a recorded split and the one now (``train now lists CASE_A``, ``fold 0 -> 1``)."""
    before = recorded if isinstance(recorded, dict) else {}
    name = next((name for name in now if before.get(name) != now[name]), None)
    if name is None:
        return "its record holds other fields"
    old, new = before.get(name), now[name]
    if not (isinstance(old, list) and isinstance(new, list)):
        return f"{name} {shown_value(old)} -> {shown_value(new)}"
    added, dropped = [c for c in new if c not in old], [c for c in old if c not in new]
    if added:
        return f"{name} now lists {added[0]}"
    return f"{name} no longer lists {dropped[0]}" if dropped else f"{name} lists its cases in another order"


def _check_never_checkpointed(out: Path) -> None:
    """Refuse a run without a last checkpoint that trained epochs all the same: resuming would start it again from
    its first epoch, replace its best model and log its epochs twice. A run stopped in its first epoch starts again.
    """
    trained = _checkpointed_epochs(out)
    if trained:
        raise InputError(
            f"{out} lacks last.json, the state of its epoch {trained}; restore it, or start again with --overwrite"
        )


def _checkpointed_epochs(out: Path) -> int:
    """How many epochs a run folder shows saved in a last checkpoint: its log.csv's rows (an epoch's row is written
    after its last checkpoint), else its best model's 0-based epoch (the best of epoch k + 1 is saved after the last
    checkpoint of epoch k; only the first epoch's may be there alone, its run killed before the last was saved)."""
    log = out / "log.csv"
    if log.is_file():
        rows = sum(1 for line in log.read_text(errors="replace").splitlines()[1:] if line.strip())
        if rows:
            return rows
    try:
        best = read_json(out / "best.json") if (out / "best.json").is_file() else {}
    except InputError:  # unreadable: it tells nothing
        best = {}
    metrics = best.get("metrics") if isinstance(best, dict) else None
    epoch = metrics.get("epoch") if isinstance(metrics, dict) else None
    return epoch if is_whole_number(epoch) and epoch > 0 else 0


def _check_best(out: Path, task: str) -> None:
    """Refuse a run whose best model no longer loads (a damaged or edited best.json or best.safetensors): resuming a
    finished run only reports it, and an unfinished one may never replace it."""
    try:
        checkpoint.load_model(out / "best.json", task)
    except WeightsError as exc:
        raise WeightsError(
            f"the best model of {out} does not load ({exc}); restore it, or train the run again with --overwrite"
        ) from None


def recorded_recipe(out: Path) -> TrainConfig:
    """A run's recipe as its config.json records it, checked (:func:`_recipe_of`): what ``train --resume`` and
    ``cv`` (whether a fold was trained with the recipe given) read it with."""
    return _recipe_of(read_json(out / "config.json"), str(out / "config.json"))


def _recipe_of(values: object, what: str) -> TrainConfig:
    """A run's recorded recipe (``what`` names where it is), parsed and checked as one given on the command line
    is."""
    if not isinstance(values, dict):
        raise InputError(f"{what} is not a training recipe (a JSON object of settings)")
    try:
        return from_dict(TrainConfig, values)
    except ConfigError as exc:
        raise InputError(f"{what}: {exc}") from None


def _check_recipe(config: TrainConfig) -> None:
    """Refuse settings that contradict each other for the task or the input size, or that need a package missing
    here."""
    if config.flair_only and config.task != "abnormality":
        raise InputError(
            "flair_only replaces the pre- and post-contrast channels of the abnormality task; set it to 0 for brain "
            "training"
        )
    if config.patch > config.preprocess.size:
        raise InputError(
            f"patch {config.patch} is larger than the model input {config.preprocess.size}x{config.preprocess.size}"
        )
    if config.tensorboard:  # its package now, not once the run folder is made and the cases are read
        _summary_writer()


def _summary_writer() -> type:
    """TensorBoard's ``SummaryWriter``; refused in one line where the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError("tensorboard logging needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter


def _start_record(init_from: str | os.PathLike | None, init_member: int | None) -> dict[str, object]:
    """What start.json holds: the checkpoint a run's weights start from (None: random), its ensemble member and the
    sha256 of its weights, which its JSON records (and loading checks): another checkpoint saved at that path later is
    another starting point, not the run's."""
    if init_from is None:
        return {"init": None, "member": None, "sha256": None}
    json_path = checkpoint.paths_of(init_from)[1]
    return {"init": str(json_path.resolve()), "member": init_member, "sha256": _weights_sha256(json_path)}


def _weights_sha256(json_path: Path) -> str | None:
    """The sha256 of a checkpoint's weights as its JSON records it; None where the JSON does not (missing, unreadable):
    no weights a run may start from."""
    try:
        recorded = parse_json(json_path.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):  # UnicodeDecodeError is a ValueError; AttributeError: not an object
        return None
    return recorded if isinstance(recorded, str) else None


def _recorded_start(run: Path) -> dict[str, object]:
    """A run's start record (start.json), checked: a checkpoint path or None, a member or None and, in a record made
    since runs record it, the sha256 of the checkpoint's weights or None."""
    recorded = read_json(run / START_FILE)
    kinds = {"init": str, "member": int, "sha256": str}
    if (
        not isinstance(recorded, dict)
        or not {"init", "member"} <= recorded.keys()
        or any(recorded.get(name) is not None and not isinstance(recorded[name], kind) for name, kind in kinds.items())
    ):
        raise InputError(f"{run / START_FILE} is not a start record; train the run again with --overwrite")
    return recorded


def check_start(
    run: Path, who: str, init_from: str | os.PathLike | None, init_member: int | None, again: str, fix: str
) -> None:
    """Refuse starting weights (``init_from``, member ``init_member``) other than those the run ``run`` (``who``)
    started from, as its start.json records them (:func:`_refuse_other_start`)."""
    _refuse_other_start(who, _recorded_start(run), _start_record(init_from, init_member), again, fix)


def _refuse_other_start(who: str, recorded: dict[str, object], asked: dict[str, object], again: str, fix: str) -> None:
    """Refuse starting weights ``asked`` other than those ``who`` (a run, a fold) started from (``recorded``, its
    start.json): another checkpoint or member (``again`` says what to give instead), or other weights saved since at
    the recorded path (``fix``: the other way out). A record made before runs recorded the weights' sha256 is
    compared by path and member alone."""
    if (recorded["init"], recorded["member"]) != (asked["init"], asked["member"]):
        raise InputError(f"{who} started from {_described(recorded)}, not {_described(asked)}; {again}")
    digest = recorded.get("sha256")
    if digest is not None and digest != asked["sha256"]:
        raise InputError(
            f"{who} started from {recorded['init']} (weights sha256 {str(digest)[:12]}...), which no longer holds "
            f"them; restore that checkpoint, or {fix}"
        )


def _described(start: dict[str, object]) -> str:
    """A starting point in words: its checkpoint (and member), or random weights."""
    if start["init"] is None:
        return "random weights"
    return str(start["init"]) + ("" if start["member"] is None else f" (member {start['member']})")


def _starting_point(
    out: Path, init_from: str | os.PathLike | None, init_member: int | None, resume: bool
) -> tuple[str | os.PathLike | None, int | None]:
    """The weights the run starts from: ``init_from`` for a new run; for a resumed one, those its start.json
    records (a run stopped before its first checkpoint starts again from them, so they must still be at their path),
    which another --init may not replace.
    """
    if resume:
        refuse_lost_record(out, START_FILE, "split", "the record of the weights it started from")
    if not resume or not (out / START_FILE).is_file():
        return init_from, init_member  # a new run, or one made before runs recorded their start
    recorded = _recorded_start(out)
    start, member = recorded["init"], recorded["member"]
    checkpointed = checkpoint.paths_of(out / "last")[1].is_file()
    if init_from is not None or (start is not None and not checkpointed):  # asked for, or read again
        asked = _start_record(init_from, init_member) if init_from is not None else _start_record(start, member)
        fix = "resume it without --init" if checkpointed else "train the run again with --overwrite"
        _refuse_other_start(f"run {out}", recorded, asked, "resume it with that --init or none", fix)
    return start, member


def _create_run(
    out: Path,
    config: TrainConfig,
    split: Split,
    paths: dict[str, Path],
    start: dict[str, object],
    world: distributed.World,
    overwrite: bool,
) -> None:
    """Rank 0 makes the run folder with config.json, split.json, start.json and data.json (the files of the cases
    it trains and validates on), once every rank has checked its data; without ``overwrite``, a folder that appeared
    at ``out`` while the data were read stays, and the run is refused.
    """
    distributed.barrier(world)
    if world.is_main:
        used = {case_id: paths[case_id] for case_id in split.train + split.validation}
        with atomic_dir(
            out, mark="training run", replace=overwrite
        ) as tmp:  # the folder appears with its four files and marker or not at all
            (tmp / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
            save_split(split, tmp / "split.json")
            (tmp / START_FILE).write_text(json.dumps(start, indent=2))
            (tmp / DATA_FILE).write_text(json.dumps(data_record(used), indent=1))
    distributed.barrier(world)


def accumulate(tail: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add a state dict to a running float64 sum on the CPU, where a resumed run loads it (integer buffers keep
    their latest value)."""
    weights = {k: v.detach().cpu() for k, v in weights.items()}
    return {
        k: (tail[k] + v.double() if k in tail else v.double()) if v.is_floating_point() else v.clone()
        for k, v in weights.items()
    }


def tail_average(tail: dict[str, torch.Tensor], count: int, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The mean of ``count`` accumulated state dicts, in the dtypes of ``like``."""
    return {k: (v / count).to(like[k].dtype) if like[k].is_floating_point() else v for k, v in tail.items()}


def train(
    config: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | os.PathLike | None = None,
    init_member: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    config_file: str | os.PathLike | None = None,
    fold_of_cv: bool = False,
) -> TrainResult:
    """Train a U-Net on the cases under ``data`` into the run folder ``out``.

    The folder holds config.json, split.json, log.csv, best.safetensors/.json (highest mean
    validation Dice) and last.safetensors/.json (model, optimizer and RNG state to resume).
    ``config_file``: the file ``config`` was read from (``--config``), which the run folder may not hold.
    ``fold_of_cv``: the run is a fold of the cross-validation whose folder holds it (no other flairseg folder may).
    """
    torch_device = resolve_device(device)
    limit_threads(threads)
    data = Path(data)
    # resolved: the run folder is replaced where it is, not a link to it (which would become a folder of its own)
    given = (data, init_from, config_file)
    out = _check_run_folder(given, Path(out), resume, overwrite, fold_of_cv)
    torch_device, world = _device_and_world(torch_device)
    quiet = quiet or not world.is_main
    with _holding(out, world):
        # again, held: another process may have made or replaced the folder since
        _check_run_folder(given, out, resume, overwrite, fold_of_cv)
        paths = index_cases(data)
        config, split = _plan_run(out, config, paths, resume)
        init_from, init_member = _starting_point(out, init_from, init_member, resume)
        cases = _training_cases(paths, split, config, quiet, data)
        model, optimizer, state = _model_and_state(config, out, init_from, init_member, resume, torch_device, quiet)
        if not resume:  # only now: bad data or a bad --init checkpoint leave no half-made run folder behind
            _create_run(out, config, split, paths, _start_record(init_from, init_member), world, overwrite)
        return _run_epochs(model, optimizer, state, config, split, cases, out, world, quiet)


@contextlib.contextmanager
def _holding(out: Path, world: distributed.World) -> Iterator[None]:
    """Rank 0 holds the run folder while the run trains (:func:`~flairseg.outputs.held_folder`); when another
    process holds it, every rank stops."""
    with contextlib.ExitStack() as stack:
        refusal = None
        if world.is_main:
            try:
                stack.enter_context(held_folder(out, "trained"))
            except (InputError, OSError) as exc:
                refusal = exc
        if distributed.all_sum([float(refusal is not None)], world)[0]:
            raise refusal or InputError(f"{out} is being trained by another process")
        yield


def _run_epochs(
    model: UNet,
    optimizer: torch.optim.Optimizer,
    state: checkpoint.TrainingState,
    config: TrainConfig,
    split: Split,
    cases: _Cases,
    out: Path,
    world: distributed.World,
    quiet: bool,
) -> TrainResult:
    """The epochs that remain after ``state``, then the tail average; the run's result."""
    torch_device = next(model.parameters()).device
    net = model  # channels-last above: about 1.8x faster convolutions on CPU (benchmarks/)
    if world.size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch_device.index] if torch_device.type == "cuda" else None
        )
    steps = config.steps_per_epoch or max(1, sum(len(a) for a in cases.areas) // (config.batch_size * world.size))
    log = _EpochLog(out, quiet, config.tensorboard and world.is_main) if world.is_main else None
    loss_fn = loss_function(config.loss)
    for epoch in range(state.epoch + 1, config.epochs):
        started = time.perf_counter()
        losses = _train_epoch(net, optimizer, loss_fn, cases, config, epoch, steps, world, torch_device, quiet)
        train_loss = distributed.all_sum([float(np.mean(losses))], world)[0] / world.size
        _check_loss(train_loss, epoch, state, out)
        if log is not None:
            dice = validate(model, cases.validation, config, torch_device) if cases.validation else [1.0 - train_loss]
            _record_epoch(model, optimizer, state, config, split, epoch, dice, out)
            log.write(epoch, config.epochs, train_loss, dice, state, time.perf_counter() - started)
        distributed.barrier(world)
    average_dice, best_is_average = (
        _finish_with_tail_average(model, state, config, split, cases.validation, out, quiet)
        if world.is_main
        else (None, False)
    )
    if log is not None:
        log.close()
    distributed.shutdown(world)
    return TrainResult(
        out, state.best_epoch, state.best_dice, config.epochs, world.is_main, average_dice, best_is_average
    )


def _check_loss(train_loss: float, epoch: int, state: checkpoint.TrainingState, out: Path) -> None:
    """Stop a run whose epoch loss is NaN or infinite (every rank sees the same sum) before anything of the epoch is
    saved: its weights are NaN or on their way there, and resuming would repeat the same steps."""
    if not math.isfinite(train_loss):
        kept = f"the checkpoints of epoch {state.epoch + 1} are kept" if state.epoch >= 0 else "no checkpoint was saved"
        raise ConfigError(
            f"training {out} diverged in epoch {epoch + 1} (loss {train_loss}) and stopped; {kept}: train again with a "
            "lower lr"
        )


def _device_and_world(device: torch.device) -> tuple[torch.device, distributed.World]:
    """The torchrun world (one process without torchrun) and this rank's device: its own GPU under torchrun."""
    world = distributed.init(device)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device, world


def _check_run_folder(
    given: tuple[Path, str | os.PathLike | None, str | os.PathLike | None],
    out: Path,
    resume: bool,
    overwrite: bool,
    fold_of_cv: bool,
) -> Path:
    """Refuse missing data, an existing run folder without --resume or --overwrite, an output in a folder flairseg
    made (but a cross-validation's, for its fold), and an output that holds an input (``given``: the data, the
    --init checkpoint, the --config file) or (resumed: written into, not replaced) holds a link that leads one of its
    files into them, as cv refuses for its folds; the run folder, resolved.
    """
    data, init_from, config_file = given
    if not data.exists():
        raise InputError(f"data folder {data} does not exist")
    if out.exists() and not (resume or overwrite):
        raise InputError(f"run folder {out} exists; pass --resume to continue it or --overwrite to start again")
    # never an input, the current or home folder, or a foreign folder
    inputs = InputPaths([data, config_file, *(checkpoint.files_of(init_from) if init_from is not None else ())])
    within = "cross-validation" if fold_of_cv else None
    out = check_output(out, inputs, overwrite=True, replaces=not resume, kind="training run", within=within)
    if resume:
        inputs.refuse_folder(out, "a file of the run")
    return out


@dataclass(frozen=True)
class _Cases:
    """A run's cases as model inputs."""

    train: list[Prepared]
    stripped: list[Prepared] | None  # the training cases skull-stripped, when the recipe mixes them in
    validation: list[Prepared]
    areas: list[np.ndarray]  # per training case, the label's area on each slice (slice sampling)


def _training_cases(paths: dict[str, Path], split: Split, config: TrainConfig, quiet: bool, data: Path) -> _Cases:
    """The training cases (and their skull-stripped copies when asked) and the validation cases, as model inputs."""
    train_cases, stripped_cases = _prepare([paths[c] for c in split.train], config, quiet, "training cases")
    val_cases, _ = _prepare(
        [paths[c] for c in split.validation], replace(config, skull_strip=0.0), quiet, "validation cases"
    )
    _check_training_cases(any(p.target.any() for p in train_cases), train_cases[0].inputs.shape[1], config, data)
    return _Cases(train_cases, stripped_cases, val_cases, [p.target.sum(axis=(1, 2)) for p in train_cases])


def _check_training_cases(labelled: bool, channels: int, config: TrainConfig, data: Path) -> None:
    """Refuse training cases without a voxel of the task's label (``labelled``: any of them holds one), or with other
    input channels than the model's (``channels``: what the data give)."""
    if not labelled:
        raise InputError(f"no {TASK_SPECS[config.task].label} voxel in any training case under {data}; check the masks")
    if channels != config.model.in_channels:
        raise InputError(f"the data give {channels} input channels but the model expects {config.model.in_channels}")


def check_runs(config: TrainConfig, data: Path, paths: dict[str, Path], splits: Sequence[Split], quiet: bool) -> None:
    """Refuse, before the first of several runs of one recipe on one data folder is made (cv's folds, ``splits``
    theirs; ``paths``: the cases under ``data``, case id -> path), what :func:`train` would refuse in any of them
    before making its folder: the recipe, a case missing, a case it cannot read or prepare, a run whose training cases
    hold no label. Each case is read and prepared once, not once a run, and only whether it holds a label and its
    channel count are kept; a run refusing its data only when its turn comes would come after the runs before it
    trained.
    """
    _check_recipe(config)
    for split in splits:
        _check_split_cases(split, paths)
    training = sorted({case_id for split in splits for case_id in split.train})
    validating = sorted({case_id for split in splits for case_id in split.validation} - set(training))
    cases = _each_prepared([paths[c] for c in training], config, quiet, "every fold's training cases")
    facts = {case_id: (bool(p.target.any()), p.inputs.shape[1]) for case_id, (p, _) in zip(training, cases)}
    for _ in _each_prepared(
        [paths[c] for c in validating], replace(config, skull_strip=0.0), quiet, "validation cases"
    ):
        pass
    for split in splits:
        labelled = any(facts[c][0] for c in split.train)
        _check_training_cases(labelled, facts[split.train[0]][1], config, data)


def _model_and_state(
    config: TrainConfig,
    out: Path,
    init_from: str | os.PathLike | None,
    init_member: int | None,
    resume: bool,
    device: torch.device,
    quiet: bool,
) -> tuple[UNet, torch.optim.Optimizer, checkpoint.TrainingState]:
    """The network (channels-last on ``device``), its optimizer and the training state, resumed from ``out/last``
    when asked.
    """
    torch.manual_seed(config.seed)
    if config.deterministic:  # CPU kernels are deterministic already; on GPU this trades speed for bitwise repeats
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    resumed = resume and checkpoint.paths_of(out / "last")[1].is_file()
    # a run stopped before its first checkpoint starts again from its starting weights
    model = _initial_model(config, None if resumed else init_from, init_member)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = checkpoint.TrainingState()
    if resumed:
        state = checkpoint.load_training_state(out / "last", model, optimizer, config.task)
        if not quiet:
            print(f"resuming {out} after epoch {state.epoch + 1} of {config.epochs}", file=sys.stderr)
    return model, optimizer, state


def _initial_model(config: TrainConfig, init_from: str | os.PathLike | None, init_member: int | None) -> UNet:
    """The recipe's U-Net, with the weights of ``init_from`` (member ``init_member`` of an ensemble) when given."""
    model = UNet(**dataclasses.asdict(config.model))
    if init_from is None:
        return model
    initial, meta = checkpoint.load_model(init_from)
    if meta.get("members"):
        if init_member is None:
            raise WeightsError(
                f"cannot fine-tune from {init_from}: it is an ensemble of {meta['members']} models; start from one of "
                "its folds' checkpoints"
            )
        initial = initial.members[init_member]
    widened = dict(meta["model"], in_channels=config.model.in_channels)
    added = config.model.in_channels - meta["model"]["in_channels"]
    two_d = not checkpoint.preprocess_config(meta).flair_neighbours  # its channels are the sequences alone
    if widened != dataclasses.asdict(config.model) or added < 0 or (added and not two_d):
        raise WeightsError(
            f"cannot fine-tune from {init_from}: its architecture {meta['model']} differs from "
            f"{dataclasses.asdict(config.model)} (only a 2-D model's input may gain the neighbour channels)"
        )
    model.load_state_dict(_with_input_channels(initial.state_dict(), config.model.in_channels))
    return model


def _with_input_channels(state: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """A U-Net's weights taking ``channels`` inputs: the first convolution's weights for the added channels (a 2-D
    model's weights widened to a 2.5-D model's input) are zero, so the widened network computes what it did."""
    first = "enc1.0.weight"
    weight = state[first]
    added = channels - weight.shape[1]
    if added:
        state = dict(
            state, **{first: torch.cat([weight, weight.new_zeros(weight.shape[0], added, *weight.shape[2:])], 1)}
        )
    return state


def _train_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    cases: _Cases,
    config: TrainConfig,
    epoch: int,
    steps: int,
    world: distributed.World,
    device: torch.device,
    quiet: bool,
) -> list[float]:
    """One epoch of ``steps`` optimisation steps (this rank's share of every batch); the losses of its steps."""
    from tqdm import tqdm

    net.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", disable=quiet, file=sys.stderr)
    for step, (images, masks) in zip(bar, epoch_batches(cases, config, epoch, steps, world, device)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch * steps + step, config.epochs * steps)
        losses.append(train_step(net, optimizer, loss_fn, images, masks, config.bfloat16))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return losses


class _StepBatches(torch.utils.data.Dataset):
    """Step ``k``'s batch of an epoch, built on the CPU: what a loader worker computes."""

    def __init__(self, build, steps: int) -> None:
        self.build, self.steps = build, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.build(step, torch.device("cpu"))


def epoch_batches(
    cases: _Cases, config: TrainConfig, epoch: int, steps: int, world: distributed.World, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every step's (images, masks) on ``device``, this rank's share: built step by step on the device, or ahead
    by ``config.batch_workers`` forked processes on the CPU (each batch is a function of its step: on a CPU the
    same batches; on a GPU the augmentation then runs on the CPU, which changes only rounding).
    """
    per_rank = config.batch_size
    count = steps * per_rank * world.size
    items = np.resize(
        epoch_items(np.random.default_rng([config.seed, epoch]), cases.areas, config.sampling, count), (count, 2)
    )

    def build(step: int, where: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        first = (step * world.size + world.rank) * per_rank
        return training_batch(cases.train, cases.stripped, items[first : first + per_rank], config, epoch, first, where)

    if not config.batch_workers:
        return (build(step, device) for step in range(steps))
    augment.scanner_transforms(config.gamma, config.bias_field, config.noise, config.blur)  # import MONAI once, here
    loader = torch.utils.data.DataLoader(
        _StepBatches(build, steps),
        batch_size=None,
        num_workers=config.batch_workers,
        pin_memory=device.type == "cuda",
        multiprocessing_context="fork",  # the workers share the prepared cases instead of pickling them
        generator=torch.Generator(),  # its workers' seeds, drawn without touching the run's own torch RNG
    )
    channels_last = torch.channels_last
    return (
        (i.to(device, non_blocking=True).contiguous(memory_format=channels_last), m.to(device, non_blocking=True))
        for i, m in loader
    )


def _checkpoint_metadata(config: TrainConfig, split: Split, metrics: dict[str, float]) -> dict[str, object]:
    return {
        "task": config.task,
        "recipe": dataclasses.asdict(config),
        "split": dataclasses.asdict(split),
        "metrics": metrics,
    }


def _record_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: checkpoint.TrainingState,
    config: TrainConfig,
    split: Split,
    epoch: int,
    dice: list[float],
    out: Path,
) -> None:
    """After an epoch: ``best`` when its validation Dice is the highest so far, the tail sum, and ``last`` to resume
    from.
    """
    metrics = {"val_dice_mean": float(np.mean(dice)), "val_dice_median": float(np.median(dice)), "epoch": epoch}
    if metrics["val_dice_mean"] > state.best_dice:
        state.best_epoch, state.best_dice = epoch, metrics["val_dice_mean"]
        checkpoint.save_model(
            model, config.model, config.preprocess, out / "best", **_checkpoint_metadata(config, split, metrics)
        )
    if config.average_last and epoch >= config.epochs - config.average_last:
        state.tail, state.averaged = accumulate(state.tail, model.state_dict()), state.averaged + 1
    state.epoch = epoch
    checkpoint.save_training_state(
        model, optimizer, state, dataclasses.asdict(config), dataclasses.asdict(split), out / "last"
    )


class _EpochLog:
    """log.csv (one row per epoch, the file replaced whole with each: a copy of the run that shares its files, made
    with hard links, keeps its own), the optional TensorBoard scalars and the progress line of a run."""

    def __init__(self, out: Path, quiet: bool, tensorboard: bool) -> None:
        self.path, self.quiet, self.writer = out / "log.csv", quiet, None
        if not self.path.exists():
            self._append(",".join(LOG_FIELDS) + "\n")
        if tensorboard:
            self.writer = _summary_writer()(str(out / "tensorboard"))

    def write(
        self,
        epoch: int,
        epochs: int,
        train_loss: float,
        dice: list[float],
        state: checkpoint.TrainingState,
        seconds: float,
    ) -> None:
        mean_dice = float(np.mean(dice))
        row = [epoch, f"{train_loss:.5f}", f"{mean_dice:.5f}", f"{float(np.median(dice)):.5f}", state.best_epoch]
        self._append(",".join(map(str, [*row, f"{seconds:.1f}"])) + "\r\n")  # the line ending csv writes
        if self.writer is not None:
            self.writer.add_scalar("loss/train", train_loss, epoch)
            self.writer.add_scalar("dice/validation", mean_dice, epoch)
        if not self.quiet:
            print(
                f"epoch {epoch + 1}/{epochs}: loss {train_loss:.4f}, validation Dice {mean_dice:.4f} "
                f"(best {state.best_dice:.4f} at epoch {state.best_epoch + 1}), {seconds:.0f} s",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _append(self, text: str) -> None:
        """Add ``text`` to the log, replacing the file whole (never written through in place)."""
        kept = self.path.read_bytes() if self.path.exists() else b""
        with atomic_file(self.path) as tmp:
            tmp.write_bytes(kept + text.encode())


def _finish_with_tail_average(
    model: torch.nn.Module,
    state: checkpoint.TrainingState,
    config: TrainConfig,
    split: Split,
    val_cases: Sequence[Prepared],
    out: Path,
    quiet: bool,
) -> tuple[float | None, bool]:
    """The mean of the last epochs' weights as ``average``, and as ``best`` when it validates at least as well:
    (its validation Dice, whether it became best); (None, False) without ``average_last``."""
    if not state.averaged:
        return None, False
    model.load_state_dict(tail_average(state.tail, state.averaged, model.state_dict()))
    dice = validate(model, val_cases, config, next(model.parameters()).device) if val_cases else [math.nan]
    average_dice = float(np.mean(dice))
    metadata = _checkpoint_metadata(
        config,
        split,
        {"val_dice_mean": average_dice, "val_dice_median": float(np.median(dice)), "averaged_epochs": state.averaged},
    )
    checkpoint.save_model(model, config.model, config.preprocess, out / "average", **metadata)
    best_is_average = average_dice >= state.best_dice  # the tail average wins ties: it is the steadier of the two
    if best_is_average:
        state.best_dice = average_dice
        checkpoint.save_model(model, config.model, config.preprocess, out / "best", **metadata)
    if not quiet:
        print(
            f"average of the last {state.averaged} epochs: validation Dice {average_dice:.4f}"
            f"{' (kept as best)' if best_is_average else ''}",
            file=sys.stderr,
        )
    return average_dice, best_is_average
