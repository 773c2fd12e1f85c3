"""The ``flairseg`` command: argparse subcommands, each one parse, one API call, one summary.

Heavy imports happen inside the command functions so ``flairseg --help`` is instant.
Errors the user can fix print ``flairseg: error: <one line>`` and exit with status 1; a command line the parser
cannot take prints ``flairseg <command>: error: <one line> (see flairseg <command> --help)`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import logging
import os
import stat
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn

from flairseg.config import LOSSES, MAX_THREADS, MISSING_POLICIES, PRECISIONS, TASKS, VARIANTS, parse_json
from flairseg.errors import FlairsegError, InputError, denied_part, out_of_memory
from flairseg.outputs import mask_file_folder, one_line, run_report
from flairseg.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``PROG: error: REASON (see PROG --help)`` on stderr, exit status 2, no usage
    block (``--help`` prints it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class _CommandParser(_Parser):
    """A command's parser: an argument it does not know is its own error, named after the command (argparse leaves
    it to the top level, whose help does not list the command's options)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (batch sizes, threads, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _thread_count(text: str) -> int:
    """argparse type: a thread count, 1 .. MAX_THREADS."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, not {value}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_memory(parser)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=_thread_count, help="CPU threads (PyTorch's, and the BLAS pools' under NumPy and SciPy)"
    )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU; default), cpu, cuda, cuda:N or mps"
    )
    _add_threads(parser)


def _add_memory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget, e.g. 8G: a case whose header declares more is refused "
        "before decoding (default: half of the memory this process may use, or FLAIRSEG_MAX_MEMORY)",
    )


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="per-case metrics, summary and figures of predicted masks against the truth",
        description="Compare two trees of masks (Kaggle case folders or NIfTI folders) case by case and write "
        "metrics.csv, summary.md, summary.json, dice_distribution.png, gifs/ and montages/ to OUTPUT.",
    )
    evaluate.add_argument("--pred", required=True, metavar="PRED", help="predicted masks (a case or a tree of cases)")
    evaluate.add_argument("--truth", required=True, metavar="TRUTH", help="true masks in the same layout")
    evaluate.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="report folder to create")
    evaluate.add_argument("--no-figures", action="store_true", help="only the CSV and summaries")
    evaluate.add_argument(
        "--task",
        choices=TASKS,
        default="abnormality",
        help="which masks to compare: tumour (_mask files, default) or brain (_brain files)",
    )
    _add_common(evaluate)
    evaluate.set_defaults(run=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from flairseg.evaluate import evaluate

    result = evaluate(
        args.pred,
        args.truth,
        args.output,
        overwrite=args.overwrite,
        figures=not args.no_figures,
        quiet=args.quiet,
        task=args.task,
    )
    dice = result.summary["dice"]
    print(
        f"{len(result.rows)} cases: Dice mean {dice.mean:.4f}, median {dice.median:.4f} "
        f"(IQR {dice.q1:.4f}-{dice.q3:.4f}); report in {result.out}"
    )
    if result.extra_predictions:
        print(f"note: {len(result.extra_predictions)} predicted cases have no truth and were skipped", file=sys.stderr)
    return 0


def _add_preprocess(commands: argparse._SubParsersAction) -> None:
    preprocess = commands.add_parser(
        "preprocess",
        help="write preprocessed TIFF slices of a case tree (the paper's or the PyTorch port's variant)",
        description="Preprocess every case under INPUT and write <CASE>_<k>.tif and <CASE>_<k>_mask.tif "
        "under OUTPUT/<CASE>/, with transform.json to map masks back to the input grid. "
        "paper-abnormality uses the <CASE>_<k>_brain.tif brain masks when present (the paper strips the skull first); "
        "paper-brain writes the FLAIR channel with the brain masks as labels.",
    )
    preprocess.add_argument("-i", "--input", required=True, metavar="INPUT", help="a case or a tree of cases")
    preprocess.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output tree to create")
    preprocess.add_argument("--variant", choices=VARIANTS, default="paper-abnormality")
    preprocess.add_argument(
        "--missing",
        choices=MISSING_POLICIES,
        default="copy-flair",
        help="what stands in for a missing pre- or post-contrast channel of a single-channel volume (default: copy "
        "FLAIR, as the dataset does)",
    )
    preprocess.add_argument(
        "--peak-percentile",
        type=float,
        default=100.0,
        help="port variant: values below 10 %% of this percentile of the volume are background (default 100: the "
        "maximum, as the PyTorch port; a model trained with another states it as preprocess.peak_percentile)",
    )
    _add_common(preprocess)
    preprocess.set_defaults(run=_cmd_preprocess)


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from flairseg.preprocess_tree import preprocess_tree

    result = preprocess_tree(
        args.input,
        args.output,
        variant=args.variant,
        missing=args.missing,
        overwrite=args.overwrite,
        quiet=args.quiet,
        peak_percentile=args.peak_percentile,
    )
    print(f"{result.cases} cases, {result.slices} slices preprocessed ({args.variant}) into {result.out}")
    return 0


def _recipe_layers(args: argparse.Namespace) -> list[dict]:
    """The settings the command line gives, in the order they apply, each over the one before: --task and
    --preset, the --config file, the recipe options and --set."""
    from pathlib import Path

    from flairseg.config import model_preset
    from flairseg.errors import ConfigError

    base = {"task": args.task} if args.task else {}
    if args.preset:
        base["model"] = dataclasses.asdict(model_preset(args.preset))
    layers = [base]
    if args.config:
        if Path(args.config).exists() and not Path(args.config).is_file():  # a folder, a FIFO that would never end
            raise ConfigError(f"config {args.config} is not a file; give the JSON file of the recipe")
        try:
            values = parse_json(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {args.config}: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config {args.config} must hold a JSON object of settings")
        layers.append(values)
    return [*layers, _option_changes(args)]


def _option_changes(args: argparse.Namespace) -> dict:
    """The recipe options and --set settings given on the command line (nested ones as dicts)."""
    from flairseg.errors import ConfigError

    changes: dict = {}
    for name in (
        "epochs",
        "batch_size",
        "lr",
        "folds",
        "fold",
        "scheme",
        "validation_cases",
        "seed",
        "steps_per_epoch",
        "loss",
        "sampling",
    ):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    preprocess = {k: v for k, v in (("variant", args.variant), ("size", args.size)) if v is not None}
    if preprocess:
        changes["preprocess"] = preprocess
    if args.features is not None:
        changes["model"] = {"features": args.features}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs KEY=VALUE, not {item!r}")
        head, dot, rest = key.partition(".")
        changes[head] = {**changes.get(head, {}), rest: value} if dot else value
    return changes


def _train_config(args: argparse.Namespace, base=None):
    """The recipe of the command line: its settings over ``base`` (a resumed run's recipe) or the defaults."""
    from flairseg.config import TrainConfig, replace

    config = TrainConfig() if base is None else base
    for changes in _recipe_layers(args):
        config = replace(config, **changes) if changes else config
    return config


def _check_resumed_settings(args: argparse.Namespace) -> None:
    """``--resume`` with a setting other than the run's own (its config.json): refused, naming the first; another
    number of epochs with the way to train longer (a run's learning-rate schedule is fixed by its epochs).
    """
    from pathlib import Path

    from flairseg.config import TrainConfig, first_difference, from_dict
    from flairseg.errors import ConfigError

    recorded = Path(args.output) / "config.json"
    if not (args.resume and recorded.is_file()):
        return
    try:
        values = parse_json(recorded.read_text())
        config = from_dict(TrainConfig, values) if isinstance(values, dict) else None
    except (OSError, ValueError, ConfigError):
        config = None
    if config is None:
        return  # train() reports an unreadable run folder
    found = first_difference(config, _train_config(args, config))
    if found is not None and found[0] == "epochs":
        raise ConfigError(
            f"{args.output} was planned for {found[1]} epochs and resumes to that; to train longer, start a new run "
            f"from its weights: flairseg train ... --init {Path(args.output) / 'best.json'}"
        )
    if found is not None:
        raise ConfigError(
            f"{args.output} was trained with {found[0]} {found[1]}, not {found[2]}; resume it with the settings of "
            "its config.json (or none), or start a new run"
        )


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a U-Net (abnormality or brain) with patient-level folds; resumable; torchrun for N processes",
        description="Train on the cases under DATA into the run folder OUTPUT (config.json, split.json, start.json, "
        "data.json, log.csv, best and last checkpoints). Run the same command under "
        "`torchrun --nproc-per-node N -m flairseg train ...` for data-parallel training.",
    )
    train.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder")
    _add_recipe(train)
    train.add_argument("--fold", type=int)
    train.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from these weights (fine-tuning): a checkpoint or a released model's name, e.g. brain-lgg",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in OUTPUT from its last checkpoint")
    _add_device(train)
    _add_common(train)
    train.set_defaults(run=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from flairseg.train import train
    from flairseg.released_models import resolve

    init_from = resolve(args.init) if args.init else None  # a checkpoint path or a released model's name
    _check_resumed_settings(args)
    result = train(
        _train_config(args),
        args.data,
        args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        init_from=init_from,
        device=args.device,
        threads=args.threads,
        quiet=args.quiet,
        config_file=args.config,
    )
    if not result.main_process:
        return 0
    where = "the tail average" if result.best_is_average else f"epoch {result.best_epoch + 1}"
    print(
        f"trained {result.epochs} epochs; best validation Dice {result.best_dice:.4f} ({where}); model in "
        f"{result.run / 'best.json'}"
    )
    return 0


def _add_cv(commands: argparse._SubParsersAction) -> None:
    cv = commands.add_parser(
        "cv",
        help="k-fold cross-validation: train every fold, predict every case out of fold, choose the postprocessing, "
        "make the ensemble",
        description="Train the recipe's folds (default 5, patient-level, balanced by institution) into "
        "OUTPUT/fold-<k>, resuming unfinished ones; once all are trained, predict every case with the model that "
        "never saw it and write OUTPUT/report (metrics.csv, summary, Dice figure, postprocessing comparison, worst "
        "cases), OUTPUT/predictions and OUTPUT/ensemble.json, the fold models averaged with the postprocessing chosen "
        "out of fold.",
    )
    cv.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="cross-validation folder (created or continued)"
    )
    _add_recipe(cv)
    cv.add_argument(
        "--fold",
        type=int,
        action="append",
        dest="train_folds",
        metavar="K",
        help="train only this fold now (repeatable; for parallel jobs); the evaluation runs once every fold is trained",
    )
    cv.add_argument(
        "--init",
        metavar="ENSEMBLE",
        help="fine-tune: fold k starts from member k of an ensemble that flairseg cv made "
        "over the same folds (given as any checkpoint: NAME, NAME.json or NAME.safetensors; or a released "
        "model's name, e.g. abnormality-lgg-cv5-v3)",
    )
    _add_memory(cv)
    _add_device(cv)
    cv.add_argument("--quiet", action="store_true", help="no progress bars")
    cv.set_defaults(run=_cmd_cv)


def _cmd_cv(args: argparse.Namespace) -> int:
    from flairseg.cv import cross_validate
    from flairseg.released_models import resolve

    result = cross_validate(
        _train_config(args),
        args.data,
        args.output,
        folds=args.train_folds,
        device=args.device,
        threads=args.threads,
        quiet=args.quiet,
        init=resolve(args.init) if args.init else None,
        config_file=args.config,
    )
    if result is None:
        print(
            f"fold(s) {', '.join(map(str, args.train_folds))} trained; once every fold is, run the same command "
            "without --fold to evaluate"
        )
        return 0
    import numpy as np

    dice = np.array([row.dice for row in result.rows])
    print(
        f"{len(dice)} cases out of fold: Dice mean {dice.mean():.4f}, median {np.median(dice):.4f}, min "
        f"{dice.min():.4f}; "
        f"postprocessing {result.rule.rule}{f' {result.rule.value:g}' if result.rule.value else ''}; "
        f"report in {result.out / 'report'}, ensemble in {result.out / 'ensemble.json'}"
    )
    return 0


def _explicit_case(args: argparse.Namespace):
    """The case named by --flair [--t1] [--t1c] (files on one grid), refusing a mix with -i."""
    from pathlib import Path

    from flairseg.volumes import check_named_sequences, read_sequences

    if args.input:
        raise InputError("give either -i INPUT or --flair FILE (with --t1 / --t1c), not both")
    for path in (args.flair, args.t1, args.t1c):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{path} does not exist or is not a file")
    check_named_sequences(*(Path(path) if path is not None else None for path in (args.flair, args.t1, args.t1c)))
    return read_sequences(args.flair, args.t1, args.t1c, resample=args.resample)


def _part(args: argparse.Namespace):
    """(part, torchrun world): ``--part K/N``, or this rank's part when launched by torchrun; (None, None) otherwise."""
    from flairseg import distributed
    from flairseg.errors import ConfigError

    if args.part is not None:
        k, sep, n = args.part.partition("/")
        if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
            raise ConfigError(f"--part takes K/N with 0 <= K < N (e.g. 0/4 ... 3/4), not {args.part!r}")
        return (int(k), int(n)), None
    if not distributed.launched_by_torchrun():
        return None, None
    import torch

    world = distributed.init(torch.device("cpu"))  # gloo: the ranks only meet once, at the end
    return (world.rank, world.size), world


def _folds(text: str | None) -> list[int] | None:
    """``--folds 0,2`` -> [0, 2]; None keeps every member of an ensemble."""
    from flairseg.errors import ConfigError

    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--folds takes member numbers separated by commas (e.g. 0 or 0,2), not {text!r}") from None


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="segment a case or a tree of cases with a trained model",
        description="Write a mask per case into OUTPUT the way the input came (TIFF slices or NIfTI with the input "
        "header). Cases already in OUTPUT are skipped, so an interrupted batch finishes when rerun. With --truth, or "
        "masks in the input, a report (metrics.csv, summary, figures) is written to OUTPUT/report; a --task brain "
        "run's scores are metrics_brain.csv, summary_brain.md and so on, so both tasks can share OUTPUT.",
    )
    predict.add_argument(
        "-i",
        "--input",
        help="a case folder, a tree of cases, a NIfTI file, a DICOM folder, a BraTS / nnU-Net "
        "case folder or a BIDS dataset",
    )
    predict.add_argument("--flair", metavar="FILE", help="instead of -i: the FLAIR volume of one case (NIfTI)")
    predict.add_argument("--t1", metavar="FILE", help="with --flair: its pre-contrast T1 on the same grid")
    predict.add_argument("--t1c", metavar="FILE", help="with --flair: its post-contrast T1 on the same grid")
    predict.add_argument(
        "--resample",
        action="store_true",
        help="resample a case's T1 / T1c onto its FLAIR's grid when they differ (default: refuse them)",
    )
    predict.add_argument("-o", "--output", required=True, help="output folder")
    predict.add_argument(
        "--model",
        help="checkpoint (NAME.json / NAME.safetensors) or released model name (default: the task's released model)",
    )
    predict.add_argument("--task", choices=TASKS, help="refuse a model trained for another task")
    predict.add_argument("--truth", help="true masks to evaluate against (same layout as the output)")
    predict.add_argument("--probabilities", action="store_true", help="also write probability maps")
    predict.add_argument(
        "--part",
        metavar="K/N",
        help="predict only part K (0-based) of N parts balanced by case size, "
        "for N independent jobs into one OUTPUT (e.g. a SLURM array: --part $SLURM_ARRAY_TASK_ID/N); "
        "under torchrun each rank takes its own part",
    )
    predict.add_argument(
        "--strip",
        action="store_true",
        help="also write the skull-stripped image (non-brain zeroed) under OUTPUT/stripped_brain (brain task) or "
        "OUTPUT/stripped (--brain-model)",
    )
    predict.add_argument(
        "--convex-hull",
        action="store_true",
        help="brain masks: the paper's per-slice convex hull instead of hole filling (adds 4-8 %% of brain volume)",
    )
    _add_model_options(predict)
    _add_memory(predict)
    _add_device(predict)
    predict.add_argument("--overwrite", action="store_true", help="predict again cases already in OUTPUT")
    predict.add_argument("--quiet", action="store_true", help="no progress bars")
    predict.set_defaults(run=_cmd_predict)


def _add_model_options(predict: argparse.ArgumentParser) -> None:
    """How predict runs its model: ensemble members, TTA, the two-stage pipeline, precision, batch size."""
    predict.add_argument(
        "--folds",
        metavar="K[,K...]",
        help="members of an ensemble model to use (default: all), e.g. 0 for the first fold's model alone",
    )
    predict.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    predict.add_argument(
        "--brain-model",
        metavar="MODEL",
        help="the paper's two-stage pipeline: strip the skull with this brain model (checkpoint or released name), "
        "then segment the abnormality inside the brain",
    )
    predict.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="network compute precision: auto = bf16 where the CPU/GPU has it natively, else fp32 (default: auto)",
    )
    predict.add_argument(
        "--batch-size",
        type=positive_int,
        help="slices per forward pass (default 4 on a CPU, the fastest there; 32 on a GPU)",
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from flairseg.errors import ConfigError
    from flairseg.predict import Segmenter, predict_tree
    from flairseg.released_models import resolve

    if not args.input and not args.flair:
        raise InputError("give the cases with -i INPUT, or one case with --flair FILE [--t1 FILE] [--t1c FILE]")
    if (args.t1 or args.t1c) and not args.flair:
        raise InputError("--t1 and --t1c go with --flair FILE")
    from flairseg.inference import resolve_device

    part, world = _part(args)
    threads, kind = args.threads, resolve_device(args.device).type
    if world is not None and threads is None and kind == "cpu":  # torchrun on CPUs: the cores split between the ranks
        import os

        threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world.size)))
    device = f"cuda:{world.local_rank}" if world is not None and kind == "cuda" else args.device  # a GPU per rank
    output, mask_file = _output_of(args, part)
    model = resolve(args.model, task=args.task or "abnormality")
    options = {
        "device": device,
        "threads": threads,
        "batch_size": args.batch_size,
        "tta": args.tta,
        "convex_hull": args.convex_hull,
        "precision": args.precision,
    }
    segmenter = Segmenter(model, task=args.task, folds=_folds(args.folds), **options)
    source = _explicit_case(args) if args.flair else args.input
    brain_segmenter = None
    if args.brain_model:
        if segmenter.task != "abnormality":
            raise ConfigError(
                "--brain-model runs the two-stage pipeline of an abnormality model; drop it for --task brain"
            )
        brain_segmenter = Segmenter(resolve(args.brain_model, task="brain"), task="brain", **options)
    run = lambda: predict_tree(
        source,
        output,
        segmenter,
        truth=args.truth,
        probabilities=args.probabilities,  # noqa: E731
        overwrite=args.overwrite,
        quiet=args.quiet or (world is not None and not world.is_main),
        brain_segmenter=brain_segmenter,
        strip=args.strip,
        resample=args.resample,
        part=part,
        mask_file=mask_file,
    )
    result = run() if world is None else _run_on_ranks(run, world)
    if result is None:
        return 0
    print(_predict_summary(result, part))
    return 0


def _output_of(args: argparse.Namespace, part: tuple[int, int] | None):
    """(run folder, mask file): ``-o NAME.nii[.gz]`` for one volume writes the mask to that file (as HD-BET and
    SynthStrip do) and the run's report beside it, in ``NAME_flairseg/``; any other ``-o`` is the run folder."""
    from pathlib import Path

    name = str(args.output)
    if not name.lower().endswith((".nii", ".nii.gz")):
        return args.output, None
    one_volume = args.flair or (args.input and Path(args.input).is_file())
    if not one_volume or part is not None or args.strip or args.probabilities:
        raise InputError(
            f"-o {name} names a mask file, which fits one volume (-i FILE or --flair FILE) without --part, --strip "
            "or --probabilities; give a folder for anything else"
        )
    mask_file = Path(name)
    return mask_file_folder(mask_file), mask_file


def _run_on_ranks(run, world):
    """``run`` on every torchrun rank; after all finish, rank 0 merges the run's tables and returns the whole
    run's result.

    A rank that fails tells the others (they stop waiting); rank 0 then reports how many failed.
    """
    import json

    from flairseg import distributed
    from flairseg.predict import merge_run_report

    error = None
    try:
        result = run()
    except (FlairsegError, OSError) as exc:
        error = exc
    failed = int(distributed.all_sum([1.0 if error else 0.0], world)[0])
    if error is not None or not world.is_main:
        distributed.shutdown(world)
        if error is not None:
            raise error
        return None
    distributed.shutdown(world)
    if failed:
        raise InputError(
            f"{failed} of {world.size} ranks failed; their messages say why, and a rerun finishes their cases"
        )
    report = run_report(result.out)
    records = [json.loads(report.part_record(k, world.size, result.task).read_text()) for k in range(world.size)]
    return dataclasses.replace(
        merge_run_report(result.out, result.title, result.task),
        predicted=sum(r["predicted"] for r in records),
        skipped=sum(r["skipped"] for r in records),
    )


def _predict_summary(result, part: tuple[int, int] | None) -> str:
    """The last line of ``flairseg predict``: counts, Dice, substitutions, flags, removed components."""
    line = f"{result.predicted} cases predicted, {result.skipped} already done, into {result.out}"
    if part is not None:
        line += f" (part {part[0]} of {part[1]}; the report covers the cases of every part finished so far)"
    if result.metrics:
        import numpy as np

        dice = [m.dice for m in result.metrics]
        line += (
            f"; Dice mean {np.mean(dice):.4f}, median {np.median(dice):.4f} over {len(dice)} cases with truth "
            f"(report in {run_report(result.out).path})"
        )
    if result.substituted:
        line += f"; {result.substituted} cases lacked a pre- or post-contrast T1, given a copy of the FLAIR instead"
        line += " (report/inputs.csv)"
    if result.flagged:
        line += f"; {result.flagged} cases flagged for review ({result.out / 'report' / 'qc.csv'})"
    if result.removed_components:
        components = result.out / "report" / "components.csv"
        line += f"; postprocessing removed {result.removed_components} components (listed in {components})"
    return line + f"; check the masks by eye in {run_report(result.out).html}"


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="segment the bundled sample case with the released model (offline)")
    demo.add_argument("-o", "--output", default="flairseg-demo", help="output folder (default: flairseg-demo)")
    demo.add_argument("--model", help="checkpoint or released model name (default: the released abnormality model)")
    _add_threads(demo)
    demo.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    demo.set_defaults(run=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from flairseg.demo import run_demo

    result = run_demo(args.output, model=args.model, overwrite=args.overwrite, threads=args.threads)
    print(
        f"{result.case_id}: Dice {result.dice:.4f} against its manual mask; mask, GIF, montage and report in "
        f"{result.out} (open report.html)"
    )
    return 0


def _add_models(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list the released models that ship with flairseg")
    models.set_defaults(run=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from flairseg.released_models import CITATION, WEIGHTS_LICENCE, registry

    released = registry()
    if not released:
        print("no released models ship with this version; train one with `flairseg train` and pass --model")
        return 0
    print("| name | task | default | description | metrics |\n|---|---|---|---|---|")
    for entry in released:
        metrics = ", ".join(f"{k} {v}" for k, v in entry.metrics.items())
        print(f"| {entry.name} | {entry.task} | {'yes' if entry.default else ''} | {entry.description} | {metrics} |")
    print(f"\nLicence: {WEIGHTS_LICENCE}\nCite the method and the data: {CITATION}")
    return 0


def _add_shape(commands: argparse._SubParsersAction) -> None:
    shape = commands.add_parser(
        "shape",
        help="tumour shape features (ASD, MF, BEVR, volume) of a tree of masks, as CSV",
        description="Compute the shape features of Buda et al. (2019) for every case's tumour mask under INPUT "
        "(Kaggle case folders of <CASE>_<k>_mask.tif, or NIfTI masks; manual or predicted) and write one row per case "
        "to OUTPUT (.csv): ASD and MF on the slice of largest tumour area, BEVR and volume in 3-D.",
    )
    shape.add_argument("-i", "--input", required=True, metavar="MASKS", help="a case or a tree of cases with masks")
    shape.add_argument("-o", "--output", required=True, metavar="CSV", help="features file to create (.csv)")
    shape.add_argument("--sectors", type=positive_int, default=10, help="angular sectors of ASD (default 10)")
    shape.add_argument(
        "--smoothing", type=float, default=0.1, help="MF smoothing window, share of the boundary (default 0.1)"
    )
    shape.add_argument(
        "--points", type=positive_int, default=360, help="boundary points, equally spaced by arc length (default 360)"
    )
    _add_common(shape)
    shape.set_defaults(run=_cmd_shape)


def _cmd_shape(args: argparse.Namespace) -> int:
    from flairseg.radiogenomics import shape_tree

    result = shape_tree(
        args.input,
        args.output,
        sectors=args.sectors,
        smoothing=args.smoothing,
        points=args.points,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    note = f" ({len(result.empty)} with an empty mask: features left empty)" if result.empty else ""
    print(f"{len(result.rows)} cases{note}: ASD, MF, BEVR and volume in {result.out}")
    return 0


def _add_associate(commands: argparse._SubParsersAction) -> None:
    associate = commands.add_parser(
        "associate",
        help="association of shape features with genomic subtypes (median split, Fisher's exact test, Bonferroni)",
        description="Join a features CSV (from `flairseg shape`) with a clinical CSV (e.g. the LGG dataset's data.csv) "
        "and test each hypothesis FEATURE:COLUMN: the feature split at its median against the column's clusters, "
        "Fisher's exact test (2 x k exact), cases without a label dropped per test, Bonferroni over the hypotheses. "
        "Writes associations.csv, associations.md and boxplots/ to OUTPUT.",
    )
    associate.add_argument("--features", required=True, help="features CSV from `flairseg shape`")
    associate.add_argument(
        "--clinical", required=True, help="clinical CSV, one row per patient, genomic cluster columns"
    )
    associate.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="report folder to create")
    associate.add_argument(
        "--hypothesis",
        action="append",
        metavar="FEATURE:COLUMN",
        help="a hypothesis to test, e.g. bevr:RNASeqCluster; repeat it (default: the paper's 10)",
    )
    associate.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise error rate before Bonferroni (default 0.05)"
    )
    associate.add_argument(
        "--id-column", default="Patient", help="the clinical file's patient id column (default Patient)"
    )
    associate.add_argument("--no-plots", action="store_true", help="only the tables")
    associate.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    associate.set_defaults(run=_cmd_associate)


def _cmd_associate(args: argparse.Namespace) -> int:
    from flairseg.radiogenomics import PAPER_HYPOTHESES, associate, parse_hypothesis, significant_summary

    hypotheses = [parse_hypothesis(h) for h in args.hypothesis] if args.hypothesis else PAPER_HYPOTHESES
    result = associate(
        args.features,
        args.clinical,
        args.output,
        hypotheses=hypotheses,
        alpha=args.alpha,
        id_column=args.id_column,
        plots=not args.no_plots,
        overwrite=args.overwrite,
    )
    if result.unmatched:
        print(
            f"note: {len(result.unmatched)} cases have no clinical row and were left out (e.g. {result.unmatched[0]})",
            file=sys.stderr,
        )
    print(f"{significant_summary(result)}; table in {result.out / 'associations.md'}")
    return 0


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="export a model to ONNX (for ONNX Runtime: flairseg predict --model NAME.onnx)",
        description="Write a checkpoint or released model as an ONNX file carrying its preprocessing metadata and "
        "the sha256 of its graph; `flairseg predict --model NAME.onnx` runs it with ONNX Runtime on the CPU and "
        "refuses it once changed. Needs the onnx extra.",
    )
    export.add_argument("--onnx", action="store_true", required=True, help="the format (ONNX, the only one for now)")
    export.add_argument("-o", "--output", required=True, metavar="NAME.onnx", help="ONNX file to create")
    export.add_argument("--model", help="checkpoint or released model name (default: the task's released model)")
    export.add_argument("--task", choices=TASKS, help="refuse a model trained for another task")
    export.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    export.set_defaults(run=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from flairseg.export import export_onnx
    from flairseg.released_models import resolve

    out = export_onnx(
        resolve(args.model, task=args.task or "abnormality"), args.output, task=args.task, overwrite=args.overwrite
    )
    print(f"exported to {out}; predict with it: flairseg predict -i INPUT -o OUTPUT --model {out}")
    return 0


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    """The training data and recipe options shared by ``train`` and ``cv``."""
    parser.add_argument("--data", required=True, help="a tree of cases with masks (Kaggle folders or NIfTI)")
    parser.add_argument("--task", choices=TASKS, help="abnormality (the default) or brain")
    parser.add_argument("--preset", help="model preset: paper, port or default (the default)")
    parser.add_argument("--config", help="JSON file of TrainConfig settings")
    parser.add_argument("--variant", choices=VARIANTS, help="preprocessing variant (default port)")
    parser.add_argument("--size", type=positive_int, help="in-plane input size (default 256)")
    parser.add_argument("--features", type=positive_int, help="channels of the first U-Net level")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--scheme", choices=("kfold", "paper22"))
    parser.add_argument("--folds", type=positive_int)
    parser.add_argument("--validation-cases", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--sampling", choices=("area", "oversample", "uniform"))
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any other setting, e.g. rotation=10 or model.depth=3"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flairseg`` command: each command's arguments are added beside its ``_cmd_``."""
    parser = _Parser(
        prog="flairseg",
        description="Skull stripping and FLAIR abnormality segmentation of brain MRI with U-Nets.",
    )
    parser.add_argument("--version", action="version", version=f"flairseg {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)
    for add in (
        _add_evaluate,
        _add_preprocess,
        _add_train,
        _add_cv,
        _add_predict,
        _add_demo,
        _add_shape,
        _add_associate,
        _add_export,
        _add_models,
    ):
        add(commands)
    return parser


_OS_FIXES = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EACCES: "make it accessible to this user (chmod), or write elsewhere if it is where output goes",
    errno.EPERM: "make it accessible to this user (chmod), or write elsewhere if it is where output goes",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EISDIR: "it is a folder where a file is needed: give another path",
    errno.ENOTDIR: "a part of it is a file where a folder is needed: give another path",
    errno.ENOENT: "check the path",
    errno.EEXIST: "a file is in the way of a folder flairseg needs: give another path",
    errno.ELOOP: "a symbolic link on the way leads back to itself: fix the link or give another path",
}


def _current_directory_exists() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True


def _os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and the fix."""
    if exc.errno == errno.ENOENT and not exc.filename and not _current_directory_exists():
        return "the current directory no longer exists (it was deleted or moved); change to a folder that exists"
    named = denied_part(exc.filename) if exc.filename and exc.errno in (errno.EACCES, errno.EPERM) else exc.filename
    where = f" ({named})" if named else ""
    fix = _OS_FIXES.get(exc.errno, "check the path and the disk")
    return f"{exc.strerror or type(exc).__name__}{where}; {fix}"


def _stdout_is_a_pipe() -> bool:
    """Whether standard output is a pipe (a closed one is what a reader that went away leaves)."""
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):  # no file descriptor behind it (a caller's stand-in)
        return False


def _stdout_to_nowhere() -> None:
    """Point standard output at the null device: Python flushes it again at exit, which would fail once more."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind it (a caller's stand-in)
        pass


class _Terminated(BaseException):
    """SIGTERM (a job scheduler's cancel, ``kill``), raised where the command is so that temporary files are removed.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """


def _ignore(signum: int, frame: object) -> None:
    """A signal handler that does nothing."""


def _terminate(signum: int, frame: object) -> None:
    # a scheduler's cancel reaches the process group, batch workers too: torch's SIGCHLD handler would raise over this
    # (for the rest of the process, which is ending)
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, _ignore)  # not SIG_DFL: a SIGCHLD already pending would then be reported
    raise _Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`_Terminated` while a command runs (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Library warnings and log lines (nibabel, tifffile, numpy) off while a command runs: its own messages are the
    output.
    """
    logging.disable(logging.CRITICAL)  # tifffile logs a damaged header at ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


@contextlib.contextmanager
def _memory_budget(size: str | None) -> Iterator[None]:
    """``--max-memory`` for the command's readers (flairseg.memory), checked first and undone after; without it, the
    budget the environment sets, checked first too."""
    from flairseg.memory import ENVIRONMENT, parse_size

    if size is None:
        if os.environ.get(ENVIRONMENT):
            parse_size(os.environ[ENVIRONMENT], f"memory budget {ENVIRONMENT} (set in the environment)")
        yield
        return
    parse_size(size)
    previous = os.environ.get(ENVIRONMENT)
    os.environ[ENVIRONMENT] = size
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = previous


@contextlib.contextmanager
def _stderr_of_its_own() -> Iterator[None]:
    """Python's stderr (progress bars, the error line) on a descriptor of its own while a command runs: C libraries'
    output is silenced by pointing descriptor 2 at the null device while they decode (``volumes``), which would
    otherwise take along whatever another thread prints meanwhile. A stream without a descriptor (captured, or
    replaced by the caller) is left as it is."""
    stream = sys.stderr
    try:
        own = stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        own = False
    if not own:
        yield
        return
    stream.flush()
    sys.stderr = open(os.dup(2), "w", buffering=1, encoding=stream.encoding, errors=stream.errors)  # noqa: SIM115
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = stream


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flairseg`` console command."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("flairseg: interrupted; nothing was written", file=sys.stderr)
        return 130
    with _stderr_of_its_own():
        return _run(args)


# the options that name a file or folder to read (-o, the output, has its own check: outputs.check_output)
_INPUT_PATHS = ("input", "flair", "t1", "t1c", "truth", "pred", "data", "model", "brain_model", "init", "config")
_INPUT_PATHS += ("clinical", "features")


def _check_paths_given(args: argparse.Namespace) -> None:
    """Refuse an input option given an empty path (an unset shell variable): it would read the current folder, or
    drop what it asks for."""
    for name in _INPUT_PATHS:
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            option = "-i/--input" if name == "input" else f"--{name.replace('_', '-')}"
            raise InputError(f"{option} is an empty path (an unset shell variable?); give the file or folder to read")


# what a stopped command leaves: each file whole or absent, and its unfinished work (a case whose outputs were being
# replaced, an epoch) without the record that would let a rerun take it for finished
_STOPPED = "no file was left half-written, and nothing unfinished is taken for finished by a rerun"


def _run(args: argparse.Namespace) -> int:
    """The command ``args`` asks for; every failure it may meet as one line on stderr and an exit status."""
    try:
        _check_paths_given(args)
        with _sigterm_raises(), _quiet_libraries(), _memory_budget(getattr(args, "max_memory", None)):
            return args.run(args)
    except _Terminated:
        print(f"flairseg: terminated; {_STOPPED}", file=sys.stderr)
        return 143
    except FlairsegError as exc:
        print(f"flairseg: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError as exc:  # what reads the output went away (`flairseg models | head -1`): nothing to tell it
        if exc.filename is not None or not _stdout_is_a_pipe():
            print(f"flairseg: error: {one_line(_os_error(exc))}", file=sys.stderr)
            return 1
        _stdout_to_nowhere()
        return 141  # a shell's status for a command a closed pipe stopped
    # disk full, permissions, read-only file systems, names too long, a file where a folder is needed
    except OSError as exc:
        print(f"flairseg: error: {one_line(_os_error(exc))}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as exc:  # torch's allocators raise a RuntimeError when memory runs out
        if str(exc).startswith("Symlink loop from"):  # pathlib's resolve (Python 3.11, 3.12; later an OSError)
            print(f"flairseg: error: {one_line(str(exc))}; {_OS_FIXES[errno.ELOOP]}", file=sys.stderr)
            return 1
        if not out_of_memory(exc):
            raise
        print(
            "flairseg: error: out of memory; process fewer or smaller cases at a time, or use a machine with more "
            "memory",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"flairseg: interrupted; {_STOPPED}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
