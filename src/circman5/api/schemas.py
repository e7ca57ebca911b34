"""Request and response schemas of the API (pydantic; they make the OpenAPI document).

Every input is bounded so that no request can make the service do unbounded work: step and
iteration counts, list lengths, string lengths and the number of parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from circman5.api.roles import Role
from circman5.api.users import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, USERNAME_PATTERN

MAX_HISTORY = 1000
MAX_EVENTS = 1000
MAX_SIM_STEPS = 1000
MAX_MC_STEPS = 1000
MAX_MC_ITERATIONS = 5000
MAX_MC_WORK = 1_000_000
MAX_PARAMETERS = 50
MAX_COMPARE = 10

PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,7}$"

FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Number = StrictInt | FiniteFloat
TwinPath = Annotated[str, Field(min_length=1, max_length=200, pattern=PATH_PATTERN)]
ParameterValue = Number | Annotated[str, Field(max_length=100)]
Parameters = Annotated[
    dict[TwinPath, ParameterValue],
    Field(
        max_length=MAX_PARAMETERS,
        description="dotted twin paths with new starting values, "
        'e.g. {"production_line.temperature": 24.0}',
    ),
]
Seed = Annotated[int, Field(ge=0, le=2**62)]

EventCategoryName = Literal["system", "process", "optimization", "threshold", "user", "error"]
EventSeverityName = Literal["info", "warning", "error", "critical"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth -------------------------------------------------------------------------------------
class LoginRequest(_In):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: int = Field(description="expiry, seconds since the Unix epoch")
    expires_in: int = Field(description="lifetime in seconds")
    username: str
    role: Role


class Me(BaseModel):
    username: str
    role: Role
    level: int
    roles: list[Role] = Field(description="this role and every role below it")


# -- users ------------------------------------------------------------------------------------
Username = Annotated[str, Field(pattern=USERNAME_PATTERN)]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]


SiteName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class UserCreate(_In):
    username: Username
    password: Password
    role: Role
    sites: list[SiteName] | None = Field(
        default=None, description="the sites this user sees (null: every site)"
    )


class UserUpdate(_In):
    password: Password | None = None
    role: Role | None = None
    sites: list[SiteName] | None = Field(
        default=None, description="the sites this user sees (null: every site; absent: unchanged)"
    )


class UserOut(BaseModel):
    username: str
    role: Role
    created_at: str
    updated_at: str
    sites: list[str] | None = None


# -- state and events ---------------------------------------------------------------------------
class ThresholdOut(BaseModel):
    path: str
    low: float | None
    high: float | None
    severity: str
    deadband: float


class AlarmOut(BaseModel):
    path: str
    limit: Literal["high", "low"]
    value: Any = Field(description="the current value at the path")
    threshold: float | None
    severity: str


class EventOut(BaseModel):
    event_id: str
    timestamp: str
    category: str
    severity: str
    source: str
    message: str
    details: dict[str, Any]
    acknowledged: bool
    event_type: str = "Event"


class AcknowledgeResponse(BaseModel):
    event_id: str
    acknowledged: bool


# -- simulation -----------------------------------------------------------------------------------
class SimulateRequest(_In):
    steps: Annotated[int, Field(ge=0, le=MAX_SIM_STEPS)] | None = Field(
        default=None, description="number of steps (default: the configured simulation_steps)"
    )
    parameters: Parameters = Field(default_factory=dict)


class SimulateResponse(BaseModel):
    steps: int
    #: The model parameters used: ``calibration <version>`` or ``built-in defaults``.
    parameter_set: str
    states: list[dict[str, Any]]


class MonteCarloRequest(_In):
    steps: Annotated[int, Field(ge=1, le=MAX_MC_STEPS)] = 10
    iterations: Annotated[int, Field(ge=1, le=MAX_MC_ITERATIONS)] = 100
    uncertainty: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.1
    parameters: Parameters = Field(default_factory=dict)
    seed: Seed | None = None

    @model_validator(mode="after")
    def _bounded(self) -> MonteCarloRequest:
        if self.steps * self.iterations > MAX_MC_WORK:
            raise ValueError(f"steps * iterations must be at most {MAX_MC_WORK:,}")
        return self


# -- scenarios ------------------------------------------------------------------------------------
ScenarioName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class ScenarioCreate(_In):
    name: ScenarioName
    description: Annotated[str, Field(max_length=2000)] = ""
    parameters: Parameters = Field(default_factory=dict)


class ScenarioOut(BaseModel):
    id: str
    name: str
    description: str
    parameters: dict[str, Any]
    created_at: str
    updated_at: str


class ScenarioRunRequest(_In):
    steps: Annotated[int, Field(ge=0, le=MAX_SIM_STEPS)] | None = None
    seed: Seed | None = None
    include_states: StrictBool = False


class ScenarioRunOut(BaseModel):
    simulation_id: str
    scenario: str
    steps: int
    seed: int
    parameter_set: str
    duration_s: float
    kpis: dict[str, Any]
    states: list[dict[str, Any]] | None = None


class CompareRequest(_In):
    scenarios: Annotated[list[ScenarioName], Field(min_length=1, max_length=MAX_COMPARE)]
    metrics: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=20)] | None = (
        None
    )
    steps: Annotated[int, Field(ge=0, le=MAX_SIM_STEPS)] | None = None
    seed: Seed | None = None


# -- AI and LCA -----------------------------------------------------------------------------------
class OptimizeRequest(_In):
    current_params: (
        Annotated[
            dict[Annotated[str, Field(max_length=100)], Number], Field(max_length=MAX_PARAMETERS)
        ]
        | None
    ) = None
    constraints: (
        Annotated[
            dict[
                Annotated[str, Field(max_length=100)],
                Number | Annotated[list[Number], Field(min_length=2, max_length=2)],
            ],
            Field(max_length=MAX_PARAMETERS),
        ]
        | None
    ) = None


class ApplyRequest(_In):
    optimized_params: Annotated[
        dict[Annotated[str, Field(max_length=100)], Number], Field(min_length=1, max_length=50)
    ]
    simulation_steps: Annotated[int, Field(ge=1, le=MAX_SIM_STEPS)] = 10


class PredictRequest(_In):
    parameters: (
        Annotated[
            dict[Annotated[str, Field(max_length=100)], Number], Field(max_length=MAX_PARAMETERS)
        ]
        | None
    ) = None


class LcaRequest(_In):
    batch_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w.-]+$")] | None = (
        None
    )
    save_results: StrictBool = True
    energy_kwh: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    lifetime_years: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] | None = None
    transport_distance: Annotated[float, Field(ge=0, le=1e5, allow_inf_nan=False)] | None = None
    grid_region: Annotated[str, Field(min_length=1, max_length=64)] | None = None


# -- setpoints and commands -----------------------------------------------------------------------
class SetpointOut(BaseModel):
    path: str
    min: float | None
    max: float | None
    connector: str
    kind: str
    unit: str
    description: str
    value: Any = Field(description="the current value in the twin state")


class SetpointWrite(_In):
    path: TwinPath
    value: StrictBool | StrictInt | FiniteFloat


class SetpointResultOut(BaseModel):
    path: str
    value: Any
    old_value: Any
    readback: Any
    confirmed: bool
    confirmed_by: str
    connector: str
    user: str
    duration_s: float
    event_id: str | None


class CommandRequest(_In):
    command: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]
    params: Annotated[dict[Annotated[str, Field(max_length=64)], Any], Field(max_length=20)] = (
        Field(default_factory=dict)
    )


class DiagnosticsOut(BaseModel):
    status: Literal["ok", "warning", "error"]
    checked_at: str
    components: dict[str, dict[str, Any]]


# -- jobs for the processing workers ------------------------------------------------------------
#: A processing worker runs off the edge box: its runs may be far longer than the API's own.
MAX_JOB_STEPS = 1_000_000
MAX_JOB_MC_STEPS = 10_000
MAX_JOB_MC_WORK = 10_000_000
Segment = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class _LineStart(_In):
    """``site`` and ``line``: start from that line's last state (from its MQTT state topic,
    through the site view); neither: from the twin's default starting state."""

    site: Segment | None = None
    line: Segment | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> _LineStart:
        if (self.site is None) != (self.line is None):
            raise ValueError("give both site and line, or neither")
        return self


class ScenarioRunJob(_LineStart):
    scenario: Annotated[str, Field(min_length=1, max_length=200)]
    steps: Annotated[int, Field(ge=0, le=MAX_JOB_STEPS)] | None = None
    seed: Seed | None = None


class MonteCarloJob(_LineStart):
    #: the summary holds four bands per path and step: bounded so the result stays small
    steps: Annotated[int, Field(ge=1, le=MAX_JOB_MC_STEPS)] = 10
    iterations: Annotated[int, Field(ge=1, le=MAX_MC_ITERATIONS)] = 100
    uncertainty: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.1
    parameters: Parameters = Field(default_factory=dict)
    seed: Seed | None = None

    @model_validator(mode="after")
    def _bounded(self) -> MonteCarloJob:
        if self.steps * self.iterations > MAX_JOB_MC_WORK:
            raise ValueError(f"steps * iterations must be at most {MAX_JOB_MC_WORK:,}")
        return self


class ScenarioRunSubmit(_In):
    kind: Literal["scenario.run"]
    payload: ScenarioRunJob


class MonteCarloSubmit(_In):
    kind: Literal["simulation.monte_carlo"]
    payload: MonteCarloJob


JobSubmit = Annotated[ScenarioRunSubmit | MonteCarloSubmit, Field(discriminator="kind")]
#: The job kinds the API submits (each one the processing workers run).
JOB_KINDS: tuple[str, ...] = ("scenario.run", "simulation.monte_carlo")


class JobAccepted(BaseModel):
    job_id: int
    kind: str
    status: Literal["queued"] = "queued"


class JobOut(BaseModel):
    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    worker: str | None
    result: Any
    error: str | None
    created_at: str | None
    finished_at: str | None
