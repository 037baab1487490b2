"""What an optimizer method is: its settings, and how it proposes once a study has data.

A method is one file in this package: a :class:`MethodSettings` model (the study's ``optimizer``
object for that method: its fields, defaults and checks, with ``method`` naming it) and a
:class:`Method` subclass registered with :func:`register`. The registry
(:mod:`autopeft.optimize.methods.registry`) imports every method file and builds the
``optimizer`` object's type from them, so adding a method touches one file and the registry's
import line.

The engine (:func:`autopeft.optimize.engine.propose_points`) does what every method shares: the
warm start's seeds, the space-filling design that starts a study (Sobol or random, ``n_initial``
trials), and the duplicate checks; it asks the method for the rest through :meth:`Method.propose`,
with the study's data as a :class:`History` (plain tensors: a method never sees storage).

Light module: no torch at import (the API's schemas import the settings); methods import their
heavy parts inside :meth:`Method.propose`.
"""

from __future__ import annotations

import warnings
from abc import ABC
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from autopeft.optimize.settings import default_n_initial

if TYPE_CHECKING:
    import torch

    from autopeft.optimize.domain import Domain
    from autopeft.optimize.state import OptimizerState
    from autopeft.optimize.warm import Related

#: The space-filling designs a study starts with: a scrambled Sobol sequence, or uniform random draws.
Design = Literal["sobol", "random"]


class MethodSettings(BaseModel):
    """The ``optimizer`` object of a study, for one method: frozen, and every field is one the method uses.

    A field of another method is refused with a message that says which method it belongs to,
    ``constraints`` with one that points to the study's own field; other unknown fields are
    refused as usual. Subclasses give ``method`` a ``Literal`` of their name and add their fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Deprecated field names this method still accepts, mapped to their new names (one release).
    renamed: ClassVar[dict[str, str]] = {}

    method: str = Field(description="gp (default), saas, tpe, sobol, random, or another registered method.")
    n_initial: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Space-filling trials before a model takes over (and warm-start configurations at most); "
        "default max(8, min(2d, 20)).",
    )

    @model_validator(mode="before")
    @classmethod
    def _fields_of_this_method(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _renamed(cls, data)
        errors = [_misplaced(cls, data, key) for key in data if key not in cls.model_fields]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    def n_initial_for(self, d: int) -> int:
        """The space-filling budget for a space of ``d`` dimensions."""
        return self.n_initial if self.n_initial is not None else default_n_initial(d)


def _renamed(cls: type[MethodSettings], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with deprecated names replaced by their new ones (both given, and different: an error)."""
    for old, new in cls.renamed.items():
        if old not in data:
            continue
        if new in data and data[new] != data[old]:
            raise ValueError(f"{old} is the deprecated name of {new}: give {new} only")
        warnings.warn(f"optimizer.{old} is deprecated: call it {new}", DeprecationWarning, stacklevel=2)
        data = {**{k: v for k, v in data.items() if k != old}, new: data[old]}
    return data


def _misplaced(cls: type[MethodSettings], data: dict[str, Any], key: str) -> InitErrorDetails:
    """The error of a field that ``cls``'s method does not have: the study's, another method's, or unknown."""
    name = data.get("method", cls.model_fields["method"].default)
    if key == "constraints":
        message = (
            "the parameter budget is the study's own field: give it as the study's constraints, not the optimizer's"
        )
        return InitErrorDetails(type=PydanticCustomError("study_field", message), loc=(key,), input=data[key])
    owners = [
        m for m, method in METHODS.items() if key in {*method.settings_type.model_fields, *method.settings_type.renamed}
    ]
    if not owners:
        return InitErrorDetails(type="extra_forbidden", loc=(key,), input=data[key])
    message = f"does not apply to method {name} (it is a setting of {', '.join(owners)})"
    return InitErrorDetails(type=PydanticCustomError("other_method", message), loc=(key,), input=data[key])


S = TypeVar("S", bound=MethodSettings)


@dataclass(frozen=True)
class History:
    """What a method proposes from, once the engine has done the shared part (``n_c`` completed trials,
    ``n_p`` pending, ``d`` dimensions, ``m`` objectives). Plain tensors: a method never sees storage.

    Attributes:
        domain: the grid and its trial identity (``domain.key``), and ``domain.canonical`` for bin centres.
        X: ``n_c x d`` completed points; Y: their ``n_c x m`` maximised objectives (finite).
        pending: ``n_p x d`` queued and running points, and the points this call chose already
            (warm-start seeds, the space-filling design): propose away from them.
        seed: the study seed.
        position: trials the study held before this call (its sequence position: seeds derive from it).
        taken: keys of every point that may not be proposed (completed, pending, failed, stopped, outside
            the budget, chosen already); a method adds the key of each point it returns.
        state: the study's memory between proposals (fitted models, hyperparameters), or None.
        related: the warm start's observations of earlier studies, for a method that ``learns_related``
            and has enough of them; else None.
    """

    domain: Domain
    X: torch.Tensor
    Y: torch.Tensor
    pending: torch.Tensor
    seed: int
    position: int
    taken: set[Hashable]
    state: OptimizerState | None = None
    related: Related | None = None


class Method(ABC, Generic[S]):
    """One optimizer method, registered by name with :func:`register`; subclasses are stateless.

    A method that proposes from a model overrides :meth:`propose`. One that only samples the space
    (``space_filling = True``) overrides nothing: the engine draws all its proposals from ``design``.
    """

    name: ClassVar[str]
    settings_type: ClassVar[type[MethodSettings]]
    #: The space-filling design that starts a study (and that ``source`` names for its trials).
    design: ClassVar[Design] = "sobol"
    #: Every proposal comes from ``design``: no model, so proposing is cheap and a server may queue ahead.
    space_filling: ClassVar[bool] = False
    #: Learns from a warm start's related observations (earlier studies' trials); without it a warm start
    #: only queues the earlier fronts' configurations.
    learns_related: ClassVar[bool] = False

    def propose(self, settings: S, history: History, n: int) -> list[tuple[float, ...]]:
        """Up to ``n`` new canonical points (``domain.canonical``), distinct, none of them ``taken`` (add
        each one's key to ``history.taken``); fewer only when the space is nearly exhausted.

        Called once the study is past its space-filling start (``n_initial`` trials, and at least
        :data:`~autopeft.optimize.engine.MIN_MODEL_POINTS` completed); never for a ``space_filling`` method.
        """
        raise NotImplementedError(f"method {self.name} proposes from its space-filling design only")


#: Every method, by name, in the order registered (the registry imports them in a fixed order).
METHODS: dict[str, Method[Any]] = {}


def register(cls: type[Method[Any]]) -> type[Method[Any]]:
    """Class decorator: make a method available by its name."""
    if cls.settings_type.model_fields["method"].default != cls.name:
        raise TypeError(f"{cls.settings_type.__name__}.method must default to {cls.name!r}")
    METHODS[cls.name] = cls()
    return cls
