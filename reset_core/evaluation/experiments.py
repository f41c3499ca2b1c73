"""The paper's experiments as recipes: data (TOML), run as a resumable state machine.

A :class:`Recipe` says which base model, which seen examples, how the MTL baseline is
trained on references, which RESET arms continue from it (each: where it starts, its
sampling grid, its judges, the selection weight and preset, its training overrides)
and how the checkpoints are evaluated. The built-in recipes live in
``data/experiments/*.toml``; a user's recipe is a TOML file of the same shape.

Running one is a list of steps, each an ordinary stage call (no second pipeline)::

    mtl.set       curation.create_reference_set         (instant)
    mtl.train     training.start_training               (a train job)
    ARM.sample    sampling.plan_sampling/start_sampling (a sample job; reused by key)
    ARM.judge     judging.create_judge_job              (a judge job; reused by key)
    ARM.select    scoring.save_selection                (instant)
    ARM.curate    curation.create_curated_set           (instant)
    ARM.train     training.start_training               (a train job)
    evaluate      evaluation.create_evaluation + advance_evaluation

The state (step -> status, job id, outputs) is stored in ``experiments.state`` after
every move, so :func:`advance_experiment` (what the app calls on each refresh: it never
blocks) and :func:`run_experiment` (headless, the CLI) pick up where the last call
stopped, and a killed job is relaunched, resuming from its shards or checkpoints.

Reuse is by key, as the stages already do it: an arm whose candidates (same model,
examples, settings and sample indices) exist samples nothing, and judging skips
verdicts already given, so two arms on the same candidates (the weighting ablation)
sample and judge once. An MTL run identical to an earlier finished one (same base
model, same reference set, same training fields) is reused unless the recipe says
``reuse_mtl = false``; arms are always trained.

>>> sorted(list_recipes(None))
['decoding-ablation', 'mtl-tradeoff', 'weighting-ablation']
>>> [s for s in step_names(load_recipe("weighting-ablation", None))][:4]
['mtl.set', 'mtl.train', 'w2.sample', 'w2.judge']
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reset_core.evaluation.config import GREEDY, EvalConfig, TestSet
from reset_core.store import one

#: Where the built-in recipes are (one TOML file each, named after the recipe).
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "data" / "experiments"
#: Names the recipe's checkpoints go by besides its arms.
BASE, MTL = "base", "mtl"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the field."""


# --------------------------------------------------------------------------- the recipe


def _train_overrides(v: dict[str, Any], where: str) -> dict[str, Any]:
    """Check training overrides against :class:`TrainConfig` (its bounds, its names)."""
    from reset_core.training.config import TrainConfig

    bad = {"base_model", "adapter_path", "output_dir"} & set(v)
    if bad:
        raise ValueError(f"{where}: {sorted(bad)} are set by the experiment, not the recipe")
    unknown = set(v) - set(TrainConfig.model_fields)
    if unknown:
        raise ValueError(f"{where}: unknown training fields {sorted(unknown)}")
    TrainConfig(base_model="x", **v)  # raises naming the field and its bound
    return v


class SeenExamples(BaseModel):
    """The seen (training) examples the arms sample: filters, then a seeded subset."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(
        24,
        ge=1,
        le=10_000_000,
        description="At most this many seen examples (a seeded subset). The built-ins use a "
        "few dozen so they finish in minutes on a CPU; raise it (--examples) for a real run.",
    )
    kinds: list[Literal["instruction", "context"]] = Field(
        default_factory=list, description="Example kinds to include; empty = both."
    )
    sources: list[str] = Field(
        default_factory=list, description="Sources (datasets) to include; empty = every source."
    )
    seed: int = Field(0, ge=0, description="Which subset when more examples match than count.")


class MTLStage(BaseModel):
    """The multi-task baseline: the base model trained on the seen examples' references."""

    model_config = ConfigDict(extra="forbid")

    references: int | None = Field(
        None,
        ge=1,
        description="Train on at most this many seen examples with their reference answers "
        "(the instruction/context mix kept); empty = as many as examples.count.",
    )
    train: dict[str, Any] = Field(
        default_factory=lambda: {"num_train_epochs": 1.0, "learning_rate": 2e-4},
        description="Training fields for the MTL run (any field of reset-studio train, e.g. "
        "num_train_epochs, max_steps, learning_rate, max_length).",
    )

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _train_overrides(v, "train")


class Grid(BaseModel):
    """An arm's sampling grid: temperatures x top-ks, n samples each."""

    model_config = ConfigDict(extra="forbid")

    temperatures: list[float] = Field(
        default_factory=lambda: [0.5, 1.0],
        min_length=1,
        description="Sampling temperatures (0 to 2).",
    )
    top_ks: list[int] = Field(
        default_factory=lambda: [20, -1],
        min_length=1,
        description="Top-k values; -1 = unrestricted.",
    )
    n: int = Field(1, ge=1, le=64, description="Samples per example under each setting.")
    max_tokens: int = Field(64, ge=1, le=32768, description="Most new tokens per candidate.")
    seed: int = Field(0, ge=0, description="Base seed of the settings.")

    def settings(self):
        from reset_core.sampling.settings import default_grid

        return default_grid(self.temperatures, self.top_ks, self.max_tokens, self.n, self.seed)

    @model_validator(mode="after")
    def _valid_settings(self) -> Grid:
        self.settings()  # a bad temperature or top-k is rejected here, by field
        return self


class Arm(BaseModel):
    """One RESET run: sample from a checkpoint, judge, select, curate, continue training."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="The arm's name (lowercase letters, digits, - _ .): its checkpoint's "
        "label in the evaluation."
    )
    start_from: str = Field(
        MTL,
        description="The checkpoint it samples and continues: 'mtl', 'base' or an earlier "
        "arm's name (a later round).",
    )
    grid: Grid = Field(default_factory=Grid, description="The sampling grid.")
    judges: list[str] = Field(
        default_factory=list,
        description="Offline metric judges scoring the candidates (e.g. rouge_l, token_f1, "
        "ifeval, knowledge_precision); empty = the default offline panel (two per aspect). "
        "Ignored when panel is set.",
    )
    panel: str | None = Field(
        None,
        description="A saved judge panel (its judges run and it scores the selection) instead "
        "of the offline judges; it must name its judges for every aspect.",
    )
    weight: float = Field(
        2.0,
        ge=0,
        le=100,
        description="w in score = s_task + w·(I_instr·s_instr + I_faith·s_faith); 0 = task only.",
    )
    preset: Literal["RESET", "RESET-S"] = Field(
        "RESET",
        description="RESET keeps every pick; RESET-S only the best-scored third per kind.",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training overrides for this arm (default: one epoch at a small learning "
        "rate, continuing the start checkpoint's adapter).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or v in (BASE, MTL):
            raise ValueError(
                f"{v!r} must be 1-40 lowercase letters, digits, '-', '_' or '.', and not "
                f"'{BASE}' or '{MTL}'"
            )
        return v

    @field_validator("judges")
    @classmethod
    def _judges(cls, v: list[str]) -> list[str]:
        from reset_core.judging.metric_judges import METRIC_JUDGES

        unknown = [j for j in v if j not in METRIC_JUDGES]
        if unknown:
            raise ValueError(
                f"unknown offline judges {unknown}; known: {', '.join(sorted(METRIC_JUDGES))}"
            )
        return v

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _train_overrides(v, "train")


class Evaluation(BaseModel):
    """How the experiment's checkpoints are compared: one evaluation of all of them."""

    model_config = ConfigDict(extra="forbid")

    checkpoints: list[str] = Field(
        default_factory=list,
        description="Which checkpoints answer, in table order: 'base', 'mtl', arm names; "
        "empty = base (if compared), mtl and every arm.",
    )
    baseline: str = Field(MTL, description="The checkpoint deltas are taken against.")
    tests: TestSet = Field(
        default_factory=lambda: TestSet(count=24),
        description="The test set (test_seen and test_unseen by default, a seeded subset).",
    )
    max_tokens: int = Field(
        GREEDY.max_tokens,
        ge=1,
        le=32768,
        description="Most new tokens per answer (decoding is greedy).",
    )
    panel: str = Field(
        "default",
        description="The judge panel, frozen when the evaluation is created ('default' = the "
        "offline judges plus every LLM judge with verdicts on seen data).",
    )
    batch_size: int = EvalConfig.model_fields["batch_size"]  # the same field, one help text


class Recipe(BaseModel):
    """One experiment: MTL on references, RESET arms from it, one evaluation of all."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The recipe's name (lowercase, digits, - _ .).")
    description: str = Field(
        description="What it measures and how large it is, in a sentence or two."
    )
    base_model: str | None = Field(
        None,
        description="The base model: a local folder or hub id; empty = the embedded SmolLM2.",
    )
    examples: SeenExamples = Field(
        default_factory=SeenExamples, description="The seen examples used."
    )
    mtl: MTLStage = Field(default_factory=MTLStage, description="The MTL stage.")
    reuse_mtl: bool = Field(
        True,
        description="Reuse the model of an earlier finished MTL run with the same base model, "
        "the same reference set and the same training fields instead of training it again "
        "(its candidates on seen data are then shared with that run's experiments).",
    )
    arms: list[Arm] = Field(
        default_factory=list, description="RESET arms, run in order (none: MTL against base)."
    )
    evaluation: Evaluation = Field(default_factory=Evaluation, description="The evaluation.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} must be 1-40 lowercase letters, digits, '-', '_' or '.'")
        return v

    @model_validator(mode="after")
    def _references(self) -> Recipe:
        known = [BASE, MTL]
        for i, arm in enumerate(self.arms):
            if arm.name in known:
                raise ValueError(f"arms.{i}.name: {arm.name!r} is used twice")
            if arm.start_from not in known:
                raise ValueError(
                    f"arms.{i}.start_from: {arm.start_from!r} is not 'base', 'mtl' or an "
                    f"earlier arm ({', '.join(known)})"
                )
            known.append(arm.name)
        ev = self.evaluation
        for c in ev.checkpoints:
            if c not in known:
                raise ValueError(f"evaluation.checkpoints: {c!r} is not one of {', '.join(known)}")
        if len(set(ev.checkpoints)) != len(ev.checkpoints):
            raise ValueError("evaluation.checkpoints: a checkpoint is named twice")
        if ev.baseline not in self.checkpoints():
            raise ValueError(
                f"evaluation.baseline: {ev.baseline!r} is not one of the evaluated checkpoints "
                f"({', '.join(self.checkpoints())})"
            )
        return self

    def checkpoints(self) -> list[str]:
        """The checkpoint names the evaluation compares, in order."""
        if self.evaluation.checkpoints:
            return list(self.evaluation.checkpoints)
        return [BASE, MTL, *(a.name for a in self.arms)]

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def step_names(recipe: Recipe) -> list[str]:
    """The steps a recipe runs, in order."""
    names = ["mtl.set", "mtl.train"]
    for arm in recipe.arms:
        names += [f"{arm.name}.{s}" for s in ("sample", "judge", "select", "curate", "train")]
    return [*names, "evaluate"]


def split_step(step: str) -> tuple[str, str]:
    """(arm or stage, action) of a step name; arm names may hold dots.

    >>> split_step("fixed-t0.5.sample"), split_step("evaluate")
    (('fixed-t0.5', 'sample'), ('', 'evaluate'))
    """
    head, _, what = step.rpartition(".")
    return head, what


def _error_in(e: ValidationError, source: str) -> RecipeError:
    from reset_core.errors import validation_message

    return RecipeError(f"{source}: {validation_message(e)}")


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """A recipe from TOML text; :class:`RecipeError` names ``source`` and the field.

    >>> parse_recipe('name = "x"\\ndescription = "d"\\n[[arms]]\\nname = "a"\\nweight = -1',
    ...              "my.toml")
    Traceback (most recent call last):
    ...
    reset_core.evaluation.experiments.RecipeError: my.toml: arms.0.weight: Input should be greater than or equal to 0
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{source}: not valid TOML: {e}") from e
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise _error_in(e, source) from e


def user_recipe_dir(db_path: str | Path | None) -> Path | None:
    """User recipes live beside the database, in ``experiments/`` (``*.toml``)."""
    return Path(db_path).resolve().parent / "experiments" if db_path else None


def _recipe_files(db_path) -> dict[str, Path]:
    files = {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    user = user_recipe_dir(db_path)
    if user and user.is_dir():
        files.update({p.stem: p for p in sorted(user.glob("*.toml"))})
    return files


def list_recipes(db_path: str | Path | None) -> dict[str, Recipe]:
    """The built-in recipes and the user's (``experiments/*.toml`` beside the database)."""
    return {name: load_recipe(path, db_path) for name, path in _recipe_files(db_path).items()}


def load_recipe(name_or_path: str | Path, db_path: str | Path | None) -> Recipe:
    """A recipe by name (built-in or the user's) or from a TOML file path."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        files = _recipe_files(db_path)
        if str(name_or_path) not in files:
            raise RecipeError(
                f"no recipe {str(name_or_path)!r}; known: {', '.join(sorted(files))} "
                "(or give a .toml file)"
            )
        path = files[str(name_or_path)]
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    return parse_recipe(path.read_text(encoding="utf-8"), str(path))


def scaled(
    recipe: Recipe,
    *,
    examples: int | None = None,
    tests: int | None = None,
    max_steps: int | None = None,
) -> Recipe:
    """The recipe at another size: seen examples, test examples, training steps.

    >>> r = scaled(load_recipe("mtl-tradeoff", None), examples=500, tests=200)
    >>> r.examples.count, r.evaluation.tests.count
    (500, 200)
    """
    data = recipe.model_dump(mode="json")
    if examples is not None:
        data["examples"]["count"] = examples
    if tests is not None:
        data["evaluation"]["tests"]["count"] = tests
    if max_steps is not None:
        data["mtl"]["train"]["max_steps"] = max_steps
        for arm in data["arms"]:
            arm["train"]["max_steps"] = max_steps
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise _error_in(e, f"recipe {recipe.name}") from e


# --------------------------------------------------------------------------- state


@dataclass
class ExperimentProgress:
    """Where an experiment stands after one :func:`advance_experiment`."""

    experiment_id: str
    status: str  # running | done | failed
    step: str | None  # the step in progress (or that failed); None when done
    steps_done: int
    steps_total: int
    job_id: str | None = None  # the job of the step in progress
    job_status: str | None = None
    evaluation_id: str | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def start_experiment(con, db_path: str | Path, recipe: Recipe, **overrides: Any) -> str:
    """Record an experiment for ``recipe`` (``overrides`` as :func:`scaled`); nothing runs yet.

    Returns its id ``exp-YYYYmmdd-HHMMSS-xxxxxx``. Checks that the base model exists
    and the recipe's examples do, so a bad run fails before any job.
    """
    from reset_core.sampling.launch import select_examples

    recipe = scaled(recipe, **overrides) if overrides else recipe
    base = _base_path(recipe)
    if not (Path(base) / "config.json").exists():
        from reset_core.sampling.config import ModelSpec
        from reset_core.sampling.launch import check_model

        check_model(ModelSpec(model=base))  # not a model folder: a hub id, or an error
    if recipe.arms and not select_examples(con, _selection(recipe)):
        raise RecipeError(f"recipe {recipe.name}: examples: no seen examples match")
    exp_id = f"exp-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    state = {
        "base_model": base,
        "steps": {s: {"status": "pending"} for s in step_names(recipe)},
    }
    con.execute(
        "INSERT INTO experiments (experiment_id, name, recipe, state, status) "
        "VALUES (?, ?, ?, ?, 'running')",
        [exp_id, recipe.name, recipe.model_dump_json(), json.dumps(state)],
    )
    return exp_id


def _base_path(recipe: Recipe) -> str:
    if recipe.base_model:
        return recipe.base_model
    from reset_core.models import default_model_path

    return str(default_model_path())


def _selection(recipe: Recipe):
    from reset_core.sampling.config import SampleSelection

    ex = recipe.examples
    return SampleSelection(
        count=ex.count, kinds=ex.kinds, sources=ex.sources, seed=ex.seed, splits=["seen"]
    )


def _load(con, experiment_id: str) -> tuple[Recipe, dict, str]:
    row = one(
        con,
        "SELECT recipe, state, status FROM experiments WHERE experiment_id = ?",
        [experiment_id],
    )
    if row is None:
        raise KeyError(f"no experiment {experiment_id!r}")
    recipe = Recipe.model_validate_json(row[0] if isinstance(row[0], str) else json.dumps(row[0]))
    state = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    return recipe, state, row[2]


def _save(con, experiment_id: str, state: dict, status: str, error: str | None = None) -> None:
    con.execute(
        "UPDATE experiments SET state = ?, status = ?, error = ?, finished_at = CASE WHEN ? "
        "IN ('done', 'failed') THEN current_timestamp END WHERE experiment_id = ?",
        [json.dumps(state), status, error, status, experiment_id],
    )


# --------------------------------------------------------------------------- the steps
# Each step either finishes at once (returns its outputs) or starts a job (returns
# {"job_id": ...}); a job step is finished by _finish_job once its job is done.


def _checkpoint(state: dict, name: str) -> dict:
    """The model a checkpoint name stands for: {model_id, path, adapter}."""
    if name == BASE:
        return state["models"][BASE]
    out = state["steps"][f"{name}.train"].get("outputs") or {}
    if "model_id" not in out:
        raise RuntimeError(f"checkpoint {name!r} is not trained yet")
    return out


def _train_cfg(state: dict, start: dict, overrides: dict[str, Any]):
    from reset_core.training.config import TrainConfig

    return TrainConfig(base_model=start["path"], adapter_path=start.get("adapter"), **overrides)


def _specs(con, arm: Arm) -> list[dict]:
    """The judges an arm runs: a saved panel's (their stored specs) or offline metric judges."""
    from reset_core.judging.launch import offline_specs
    from reset_core.scoring.panels import get_panel

    if arm.panel is None:
        if not arm.judges:
            return offline_specs()
        return [{"type": "metric", "name": n} for n in arm.judges]
    from reset_core.aspects import ASPECTS

    panel = get_panel(con, arm.panel)
    open_aspects = [a for a in ASPECTS if not panel.judges.get(a)]
    if open_aspects:
        raise RecipeError(
            f"arms.{arm.name}.panel: panel {arm.panel!r} names no judges for "
            f"{open_aspects}; an experiment needs the exact judges to run"
        )
    # The same resolution an evaluation freezes: stored specs, or the offline metric
    # judges' own (a panel may name one that never judged in this database yet).
    from reset_core.evaluation.launch import freeze_panel

    try:
        specs = freeze_panel(con, arm.panel)["specs"]
    except ValueError as e:
        raise RecipeError(f"arms.{arm.name}.panel: {e}") from e
    return [specs[j] for j in sorted(specs)]


def _arm_panel(con, arm: Arm, specs: list[dict]):
    """The panel an arm's selection scores with: exactly the judges it ran."""
    from reset_core.judging.worker import build_judge
    from reset_core.scoring.panels import Panel, get_panel

    if arm.panel is not None:
        return get_panel(con, arm.panel)
    judges: dict[str, list[str]] = {}
    for spec in specs:
        j = build_judge(spec)
        for a in j.aspects:
            judges.setdefault(a, []).append(j.judge_id)
    return Panel(name=f"experiment arm {arm.name}", judges=judges)


def _arm_candidates(con, arm_out: dict) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT candidate_id FROM candidates WHERE model_id = ? "
            "AND example_id IN (SELECT unnest(?)) AND setting_id IN (SELECT unnest(?))",
            [arm_out["model_id"], arm_out["example_ids"], arm_out["setting_ids"]],
        ).fetchall()
    ]


def _run_step(con, db_path, recipe: Recipe, state: dict, step: str, launch: bool) -> dict:
    """Start (or do) one step; return its outputs, or {"job_id"} when it started a job."""
    from reset_core.paths import jobs_dir

    if step == "mtl.set":
        from reset_core.curation.sets import create_reference_set
        from reset_core.training.launch import ensure_model

        base = state["base_model"]
        state.setdefault("models", {})[BASE] = {
            "model_id": ensure_model(con, base),
            "path": base,
            "adapter": None,
        }
        ex = recipe.examples
        set_id = create_reference_set(
            con,
            kinds=ex.kinds,
            sources=ex.sources,
            split="seen",
            target_size=recipe.mtl.references or ex.count,
            name=f"MTL references ({recipe.name})",
        )
        return {"set_id": set_id}
    if step == "mtl.train":
        from reset_core.training.launch import start_training

        base = state["models"][BASE]
        cfg = _train_cfg(state, base, recipe.mtl.train)
        set_id = state["steps"]["mtl.set"]["outputs"]["set_id"]
        if recipe.reuse_mtl:
            earlier = _same_training(con, set_id, base["model_id"], cfg)
            if earlier:
                return earlier
        run_id, job_id = start_training(
            con,
            db_path,
            cfg,
            set_id=set_id,
            base_model_id=base["model_id"],
            launch=launch,
        )
        return {"job_id": job_id, "run_id": run_id}
    if step == "evaluate":
        from reset_core.evaluation.launch import create_evaluation

        ev = recipe.evaluation
        names = recipe.checkpoints()
        models = {n: _checkpoint(state, n)["model_id"] for n in names}
        cfg = EvalConfig(
            name=f"{recipe.name} ({state.get('experiment_id', '')})".replace(" ()", ""),
            checkpoints=[models[n] for n in names],
            baseline=models[ev.baseline],
            tests=ev.tests,
            decoding=GREEDY.model_copy(update={"max_tokens": ev.max_tokens}),
            panel=ev.panel,
            batch_size=ev.batch_size,
        )
        eval_id = create_evaluation(
            con,
            db_path,
            cfg,
            experiment_id=state.get("experiment_id"),
            labels={models[n]: n for n in names},
        )
        return {"evaluation_id": eval_id, "checkpoints": models}

    arm_name, what = split_step(step)
    arm = recipe.arm(arm_name)
    out = state["steps"]
    if what == "sample":
        from reset_core.sampling.config import ModelSpec
        from reset_core.sampling.launch import plan_sampling, start_sampling

        start = _checkpoint(state, arm.start_from)
        spec = ModelSpec(model=start["path"], adapter=start.get("adapter"))
        plan = plan_sampling(con, _selection(recipe), spec, arm.grid.settings())
        done = {
            "model_id": spec.model_id,
            "start_model_id": start["model_id"],
            "example_ids": plan.example_ids,
            "setting_ids": [s.setting_id for s in plan.grid],
            "n_candidates": plan.n_candidates,
            "n_reused": plan.n_existing,
        }
        if plan.n_new == 0:
            return done  # every candidate exists (another arm made them): reused by key
        return {**done, "job_id": start_sampling(con, plan, jobs_dir(db_path), launch=launch)}
    sampled = out[f"{arm_name}.sample"]["outputs"]
    if what == "judge":
        import pyarrow as pa
        import pyarrow.compute as pc

        from reset_core.judging.launch import JudgePlan, create_judge_job, plan_items

        specs = _specs(con, arm)
        ids = _arm_candidates(con, sampled)
        items = plan_items(con, specs, JudgePlan(splits=["seen"]))
        # Only this arm's candidates: other candidates in the database are not its work.
        items = items.filter(pc.is_in(items["candidate_id"], value_set=pa.array(ids)))
        result = {"n_candidates": len(ids), "n_items": items.num_rows}
        if items.num_rows == 0:
            return result  # every verdict exists already: reused by key
        job_id = create_judge_job(con, db_path, specs, items=items)
        if launch:
            from reset_core import jobs

            jobs.launch(con, job_id)
        return {**result, "job_id": job_id}
    if what == "select":
        from reset_core.scoring.config import SelectionConfig
        from reset_core.scoring.selection import save_selection

        _refuse_mixed_scope(con, arm, sampled)
        specs = _specs(con, arm)
        cfg = SelectionConfig(
            preset="reset",
            weight=arm.weight,
            panel=_arm_panel(con, arm, specs),
            split="seen",
            model_ids=[sampled["model_id"]],
        )
        r = save_selection(con, cfg)
        return {"selection_id": r.selection_id, "n_picked": r.n_picked}
    if what == "curate":
        from reset_core.curation.config import CurationSpec
        from reset_core.curation.sets import create_curated_set

        sel = out[f"{arm_name}.select"]["outputs"]["selection_id"]
        set_id = create_curated_set(
            con,
            CurationSpec(
                selection_id=sel, preset=arm.preset, name=f"{arm.preset} {recipe.name}/{arm_name}"
            ),
        )
        return {"set_id": set_id}
    if what == "train":
        from reset_core.training.launch import start_training

        start = _checkpoint(state, arm.start_from)
        cfg = _train_cfg(state, start, arm.train)
        run_id, job_id = start_training(
            con,
            db_path,
            cfg,
            set_id=out[f"{arm_name}.curate"]["outputs"]["set_id"],
            base_model_id=start["model_id"],
            name=f"{recipe.name} {arm_name}",
            launch=launch,
        )
        return {"job_id": job_id, "run_id": run_id}
    raise ValueError(f"unknown step {step!r}")


def _same_training(con, set_id: str, base_model_id: str, cfg) -> dict | None:
    """The model of an earlier finished run of exactly this training, if there is one.

    Same curated set (its id is a hash of its content), same starting model and the
    same training fields (output folder aside): the same model, up to nondeterminism
    of the hardware, so training it again would only cost time.
    """
    want = cfg.model_dump(exclude={"output_dir"})
    rows = con.execute(
        "SELECT r.run_id, r.config, m.model_id, m.path, m.adapter_path FROM training_runs r "
        "JOIN models m ON m.model_id = r.model_id WHERE r.curated_set_id = ? "
        "AND r.base_model_id = ? ORDER BY r.created_at",
        [set_id, base_model_id],
    ).fetchall()
    for run_id, config, model_id, path, adapter in rows:
        config = json.loads(config) if isinstance(config, str) else config
        train = {k: v for k, v in config["train"].items() if k != "output_dir"}
        if train == want:
            return {"model_id": model_id, "path": path, "adapter": adapter, "reused_run": run_id}
    return None


def _refuse_mixed_scope(con, arm: Arm, sampled: dict) -> None:
    """Selection ranks every seen candidate of the model: refuse when others are there.

    RESET selects among the round's candidates of one policy; candidates of this model
    from other settings or examples (another arm's grid) would enter this arm's
    ranking. Arms that share a start checkpoint must therefore run in an order where
    each later arm's grid and examples contain the earlier ones' (as the built-ins do).
    """
    row = one(
        con,
        "SELECT count(*), count(DISTINCT c.setting_id) FROM candidates c "
        "JOIN examples e USING (example_id) WHERE c.model_id = ? AND e.split = 'seen' "
        "AND (c.example_id NOT IN (SELECT unnest(?)) OR c.setting_id NOT IN (SELECT unnest(?)))",
        [sampled["model_id"], sampled["example_ids"], sampled["setting_ids"]],
    )
    if row[0]:
        raise RecipeError(
            f"arms.{arm.name}: its start checkpoint has {row[0]} other seen candidates "
            f"({row[1]} other settings or other examples), which selection would rank with "
            "this arm's; order the arms so that each later arm's grid and examples contain "
            "the earlier ones', start it from another checkpoint, or set reuse_mtl = false "
            "when an earlier experiment's MTL model is shared"
        )


def _sync(con, kind: str, job_id: str) -> dict:
    if kind == "train":
        from reset_core.training.launch import sync_training

        return sync_training(con, job_id)
    if kind == "sample":
        from reset_core.sampling.launch import sync_sampling

        return sync_sampling(con, job_id)
    from reset_core.judging.launch import sync_judge_job

    return sync_judge_job(con, job_id)


def _job_kind(step: str) -> str:
    what = split_step(step)[1]
    return {"train": "train", "sample": "sample", "judge": "judge"}[what]


def _finish_job(con, step: str, info: dict, progress: dict) -> dict:
    """A job step's outputs once its job is done."""
    out = dict(info.get("outputs") or {})
    if step.endswith(".train"):
        from reset_core.training.launch import register_model

        model_id = progress.get("model_id") or register_model(con, info["job_id"])
        if not model_id:
            raise RuntimeError(f"training job {info['job_id']} finished without a model")
        path, adapter = one(
            con, "SELECT path, adapter_path FROM models WHERE model_id = ?", [model_id]
        )
        out.update(model_id=model_id, path=path, adapter=adapter)
    return out


def advance_experiment(
    con,
    db_path: str | Path,
    experiment_id: str,
    *,
    launch: bool = True,
    resume: bool = False,
    stop_before: str | None = None,
) -> ExperimentProgress:
    """Move an experiment as far as it can go without waiting; never blocks.

    Syncs the running step's job; when it is done, records its outputs and starts the
    next step (instant steps run at once, one after another; a job step's job is
    created, and launched when ``launch``). A failed or killed job fails the
    experiment, naming the step; ``resume=True`` reruns it (launched again, or
    queued for :func:`run_experiment`; its worker resumes from what it saved). The
    evaluation step advances its evaluation each call (``advance_evaluation``) when
    ``launch``; headless, :func:`run_experiment` runs it. ``stop_before`` leaves
    that step (and the ones after it) pending.
    """
    from reset_core import jobs

    recipe, state, status = _load(con, experiment_id)
    state["experiment_id"] = experiment_id
    names = step_names(recipe)
    if status == "failed" and resume:
        for s in names:
            info = state["steps"][s]
            if info["status"] != "failed":
                continue
            info.pop("error", None)
            if info.get("job_id"):
                info["status"] = "running"
                if launch:
                    jobs.launch(con, info["job_id"])
                else:
                    jobs.requeue(con, info["job_id"])
            elif s == "evaluate" and info.get("outputs"):
                from reset_core.evaluation.launch import resume_evaluation

                # It resumes by its own keys (what it made is kept), with fresh attempts.
                resume_evaluation(con, info["outputs"]["evaluation_id"])
                info["status"] = "running"
            else:
                info["status"] = "pending"
        status = "running"
        _save(con, experiment_id, state, status)

    def progress(step=None, message="", **kw) -> ExperimentProgress:
        done = sum(state["steps"][s]["status"] == "done" for s in names)
        return ExperimentProgress(
            experiment_id,
            status,
            step,
            done,
            len(names),
            evaluation_id=(state["steps"]["evaluate"].get("outputs") or {}).get("evaluation_id"),
            message=message,
            outputs={s: state["steps"][s].get("outputs") for s in names},
            **kw,
        )

    if status in ("done", "failed"):
        failed = next((s for s in names if state["steps"][s]["status"] == "failed"), None)
        err = one(con, "SELECT error FROM experiments WHERE experiment_id = ?", [experiment_id])
        return progress(failed, (err[0] if err and err[0] else status))

    for step in names:
        info = state["steps"][step]
        if info["status"] == "done":
            continue
        try:
            if info["status"] == "pending":
                if step == stop_before:
                    _save(con, experiment_id, state, status)
                    return progress(step, f"stopped before {step}")
                info.update(status="running", started_at=_now())
                result = _run_step(con, db_path, recipe, state, step, launch)
                job_id = result.pop("job_id", None)
                info["outputs"] = result
                if job_id:
                    info["job_id"] = job_id
                elif step != "evaluate":
                    info.update(status="done", finished_at=_now())
                _save(con, experiment_id, state, status)
                if info["status"] == "done":
                    continue
                if job_id:
                    return progress(
                        step,
                        f"{step}: job {job_id} {'launched' if launch else 'created'}",
                        job_id=job_id,
                        job_status="running" if launch else "queued",
                    )
            if step == "evaluate":
                ev_status, message, running = _evaluation_status(con, db_path, info, launch)
                if ev_status == "done":
                    info.update(status="done", finished_at=_now())
                    continue
                if ev_status == "failed":
                    raise RuntimeError(message)
                _save(con, experiment_id, state, status)
                return progress(step, message, job_id=running)
            job_id = info["job_id"]
            p = _sync(con, _job_kind(step), job_id)
            job_status = p.get("status")
            if job_status == "done":
                info["outputs"] = _finish_job(con, step, info, p)
                info.update(status="done", finished_at=_now())
                _save(con, experiment_id, state, status)
                continue
            if job_status in ("failed", "cancelled", "stopped"):
                raise RuntimeError(
                    f"job {job_id} {job_status}: {p.get('error') or 'no error recorded'}"
                )
            if job_status == "queued" and launch:
                jobs.launch(con, job_id)
                job_status = "running"
            _save(con, experiment_id, state, status)
            line = jobs.describe_progress(p, "steps" if step.endswith("train") else "items")
            return progress(step, f"{step}: {line}", job_id=job_id, job_status=job_status)
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its step
            info.update(status="failed", error=f"{type(e).__name__}: {e}")
            status = "failed"
            error = f"{step}: {type(e).__name__}: {e}"
            _save(con, experiment_id, state, status, error)
            return progress(step, error)
    status = "done"
    _save(con, experiment_id, state, status)
    return progress(None, "done")


def _evaluation_status(con, db_path, info: dict, launch: bool) -> tuple[str, str, str | None]:
    """(status, message, a running job) of the evaluation step, advanced when ``launch``."""
    eval_id = info["outputs"]["evaluation_id"]
    if launch:
        from reset_core.evaluation.launch import advance_evaluation

        p = advance_evaluation(con, db_path, eval_id, launch=True)
        return p.status, f"evaluate: {p.message}", (p.running_jobs or [None])[0]
    # Headless: run_experiment runs the evaluation; here only read where it stands.
    row = one(con, "SELECT status, error FROM evaluations WHERE evaluation_id = ?", [eval_id])
    if row is None:
        return "failed", f"evaluation {eval_id} is missing", None
    message = f"evaluation {eval_id} {row[0]}" + (f": {row[1]}" if row[1] else "")
    return row[0], message, None


def run_experiment(
    con,
    db_path: str | Path,
    experiment_id: str,
    on_progress=None,
    *,
    until: str | None = None,
    run=None,
) -> ExperimentProgress:
    """Run an experiment to its end in this process (headless, the CLI).

    Each job runs in-process through :func:`reset_core.jobs.run_here`, the same
    worker the app launches; the evaluation through ``run_evaluation``. A failed
    step, or a job left half done by a killed earlier run, is resumed. ``until``
    stops before that step (e.g. ``"evaluate"``), leaving it to a later call.
    ``run(con, job_id)`` runs one job in place of ``run_here`` (the CLI's progress bar
    wraps it); it returns the worker's exit code.
    """
    from reset_core import jobs

    run = run or jobs.run_here

    recipe, state, status = _load(con, experiment_id)
    names = step_names(recipe)
    if until is not None and until not in names:
        raise ValueError(f"until: no step {until!r}; the steps are {', '.join(names)}")
    # A job left "running" with no live worker (a headless run killed with its
    # process; one that is alive was launched by the app and is waited for) reruns.
    for s in names:
        job_id = state["steps"][s].get("job_id")
        if state["steps"][s]["status"] == "running" and job_id:
            row = one(con, "SELECT status, pid FROM jobs WHERE job_id = ?", [job_id])
            if row and row[0] in jobs.ACTIVE and not (row[1] and jobs._alive(row[1])):
                jobs.requeue(con, job_id)
    resume, evaluated = status == "failed", False
    while True:
        p = advance_experiment(
            con, db_path, experiment_id, launch=False, resume=resume, stop_before=until
        )
        resume = False
        if on_progress:
            on_progress(p)
        if p.status != "running" or (until is not None and p.step == until):
            return p
        if p.step == "evaluate":
            from reset_core.evaluation.launch import run_evaluation

            if evaluated:  # it ran to its end and is still not done: say so, do not spin
                return p
            run_evaluation(con, db_path, p.evaluation_id, run=run)
            evaluated = True
        elif p.job_id and p.job_status == "queued":
            run(con, p.job_id)
        else:
            time.sleep(1)  # a worker launched by the app is still running: wait for it


def list_experiments(con):
    """Experiments, newest first (a pandas DataFrame): id, name, status, steps done, evaluation."""
    rows = con.execute(
        "SELECT experiment_id, name, status, state, error, created_at, finished_at "
        "FROM experiments ORDER BY created_at DESC, experiment_id DESC"
    ).fetchall()
    import pandas as pd

    out = []
    for exp_id, name, status, state, error, created, finished in rows:
        state = json.loads(state) if isinstance(state, str) else state
        steps = state.get("steps", {})
        ev = (steps.get("evaluate", {}).get("outputs") or {}).get("evaluation_id")
        out.append(
            {
                "experiment_id": exp_id,
                "name": name,
                "status": status,
                "steps_done": sum(s["status"] == "done" for s in steps.values()),
                "steps_total": len(steps),
                "evaluation_id": ev,
                "error": error,
                "created_at": created,
                "finished_at": finished,
            }
        )
    return pd.DataFrame(
        out,
        columns=[
            "experiment_id",
            "name",
            "status",
            "steps_done",
            "steps_total",
            "evaluation_id",
            "error",
            "created_at",
            "finished_at",
        ],
    )


def get_experiment(con, experiment_id: str) -> dict:
    """One experiment: its recipe, state (step -> status, job, outputs), status and error."""
    row = one(
        con,
        "SELECT name, recipe, state, status, error, created_at, finished_at FROM experiments "
        "WHERE experiment_id = ?",
        [experiment_id],
    )
    if row is None:
        raise KeyError(f"no experiment {experiment_id!r}")
    recipe = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    state = json.loads(row[2]) if isinstance(row[2], str) else row[2]
    return {
        "experiment_id": experiment_id,
        "name": row[0],
        "recipe": recipe,
        "state": state,
        "steps": [
            {"step": s, **{k: v for k, v in info.items()}} for s, info in state["steps"].items()
        ],
        "status": row[3],
        "error": row[4],
        "created_at": row[5],
        "finished_at": row[6],
        "evaluation_id": (state["steps"].get("evaluate", {}).get("outputs") or {}).get(
            "evaluation_id"
        ),
    }
