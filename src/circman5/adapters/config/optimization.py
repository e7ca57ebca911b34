"""Optimization and ML model settings (``optimization.json``).

``DEFAULT_CONSTRAINTS``, ``MODEL_CONFIG`` and ``TRAINING_PARAMETERS`` carry the spec's keys;
the keys added for the twin's ML model and optimizer (``features``, ``targets``, the synthetic
data design, the ``OPTIMIZER`` section) all have defaults, so a file with only the spec's keys
still loads. See ``docs/ai_and_lca.md``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from circman5.adapters.config.ai_integration import check_constraints

Finite = Annotated[float, Field(allow_inf_nan=False)]


def _check_names(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must name at least one parameter")
    if len(set(value)) != len(value):
        raise ValueError("names must be unique")
    for name in value:
        if not name.isidentifier():
            raise ValueError(f"'{name}' is not a parameter name")
    return value


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: str = "gradient_boosting"
    n_estimators: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_depth: Annotated[int, Field(ge=1, le=64)] = 3
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    random_state: int = 42
    #: Process parameters the model reads (inputs), in this order.
    features: list[str] = Field(default_factory=lambda: ["temperature", "cycle_time"])
    #: Outcomes the model predicts, one regressor each.
    targets: list[str] = Field(
        default_factory=lambda: ["output_amount", "efficiency", "defect_rate", "energy_used"]
    )

    @field_validator("model_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value != "gradient_boosting":
            raise ValueError(f"unknown model_type '{value}' (supported: gradient_boosting)")
        return value

    _names = field_validator("features", "targets")(_check_names)

    @model_validator(mode="after")
    def _disjoint(self) -> ModelConfig:
        both = set(self.features) & set(self.targets)
        if both:
            raise ValueError(f"{sorted(both)} cannot be both a feature and a target")
        return self


class TrainingParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    cv_folds: Annotated[int, Field(ge=2, le=20)] = 5
    random_state: int = 42
    #: Rows of synthetic data (from the twin's process model) for the first-use model.
    synthetic_samples: Annotated[int, Field(ge=10, le=1_000_000)] = 400
    #: Range of each feature in the synthetic design (features without one use the
    #: twin's nominal value).
    synthetic_ranges: dict[str, list[Finite]] = Field(
        default_factory=lambda: {"temperature": [18.0, 27.0], "cycle_time": [20.0, 60.0]}
    )
    #: Simulated steps per synthetic row; outcomes are averaged after the warm-up steps.
    synthetic_steps: Annotated[int, Field(ge=1, le=10_000)] = 30
    synthetic_warmup_steps: Annotated[int, Field(ge=0, le=10_000)] = 10
    #: Fewest rows ``train_optimization_model`` accepts.
    min_samples: Annotated[int, Field(ge=4, le=1_000_000)] = 20

    @field_validator("synthetic_ranges")
    @classmethod
    def _ranges(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, pair in value.items():
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ValueError(f"{name}: a range is [min, max] with min <= max")
        return value

    @model_validator(mode="after")
    def _warmup(self) -> TrainingParameters:
        if self.synthetic_warmup_steps >= self.synthetic_steps:
            raise ValueError("synthetic_warmup_steps must be less than synthetic_steps")
        return self


class OptimizerConfig(BaseModel):
    """The process optimizer (``ProcessOptimizer``)."""

    model_config = ConfigDict(extra="forbid")

    #: Objective = sum of weight * predicted outcome (lower is better). The default is the
    #: spec's: ``-100 * efficiency + 0.1 * energy + 1000 * defect_rate``.
    objective_weights: dict[str, Finite] = Field(
        default_factory=lambda: {"efficiency": -100.0, "energy_used": 0.1, "defect_rate": 1000.0}
    )
    #: Features the optimizer may change; other features keep their current value (a control
    #: the model does not have as a feature is ignored).
    control_parameters: list[str] = Field(default_factory=lambda: ["temperature", "cycle_time"])
    #: Degree of the smooth polynomial surrogate fitted to the model over the feasible box.
    surrogate_degree: Annotated[int, Field(ge=1, le=5)] = 3
    #: 2**design_points_log2 scrambled Sobol points (fixed seed) sample the model.
    design_points_log2: Annotated[int, Field(ge=4, le=14)] = 8
    max_iterations: Annotated[int, Field(ge=1, le=100_000)] = 200
    #: Candidates whose objective is within this many standard errors of the model's objective
    #: (from the cross-validated errors) of the best count as ties; of those, the one closest to
    #: the current point wins, so the optimizer does not move the line to chase model noise.
    tie_tolerance_sigma: Annotated[float, Field(ge=0, le=10)] = 1.0
    #: Slack allowed on an outcome constraint, relative to the size of its bound (min 1e-9).
    constraint_tolerance: Annotated[float, Field(ge=0, le=0.1)] = 1e-6

    _names = field_validator("control_parameters")(_check_names)


class OptimizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    DEFAULT_CONSTRAINTS: dict[str, list[Finite] | Finite] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "input_amount": [50.0, 200.0],
            "energy_used": [10.0, 100.0],
            "cycle_time": [20.0, 60.0],
            "efficiency": [0.5, 1.0],
            "defect_rate": [0.01, 0.1],
            "thickness_uniformity": [80.0, 100.0],
        }
    )
    MODEL_CONFIG: ModelConfig = Field(default_factory=ModelConfig)
    TRAINING_PARAMETERS: TrainingParameters = Field(default_factory=TrainingParameters)
    OPTIMIZER: OptimizerConfig = Field(default_factory=OptimizerConfig)

    _check = field_validator("DEFAULT_CONSTRAINTS")(check_constraints)

    @model_validator(mode="after")
    def _consistent(self) -> OptimizationConfig:
        known = set(self.MODEL_CONFIG.features) | set(self.MODEL_CONFIG.targets)
        unknown = [w for w in self.OPTIMIZER.objective_weights if w not in known]
        if unknown:
            raise ValueError(f"OPTIMIZER.objective_weights {unknown} are not model parameters")
        return self
