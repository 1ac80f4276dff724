"""The slots of a draft's form: what each links to, and the request fields that fill it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cohort_service import models


class SlotKind(Enum):
    TEXT = "text"  # name, description: one value resource; `X` creates, `X_id` selects
    FLAGS = "flags"  # flag options by id, plus `active`
    CATALOG = "catalog"  # catalog entries: `X_ids` by id, `X` by name
    VALUE = "value"  # value resources: `X_ids` select, `X` creates


@dataclass(frozen=True)
class Slot:
    name: str  # the form's field, and the update_mask path that clears the slot
    kind: SlotKind
    link: type[models.Link]
    item: type[models.BaseModel]
    ids_field: str  # request field carrying ids
    values_field: str  # request field carrying names or values; "" when there is none
    noun: str  # for messages: "no department named ..."

    @property
    def single(self) -> bool:
        return self.kind is SlotKind.TEXT

    @property
    def owned(self) -> bool:
        """Value resources are private to the principal who created them."""
        return self.kind in (SlotKind.TEXT, SlotKind.VALUE)


NAME = Slot("name", SlotKind.TEXT, models.NameLink, models.DraftName, "name_id", "name", "name")
DESCRIPTION = Slot(
    "description",
    SlotKind.TEXT,
    models.DescriptionLink,
    models.DraftDescription,
    "description_id",
    "description",
    "description",
)
FLAGS = Slot(
    "flags", SlotKind.FLAGS, models.FlagLink, models.FlagOption, "flag_ids", "", "flag option"
)
DEPARTMENTS = Slot(
    "departments",
    SlotKind.CATALOG,
    models.DepartmentLink,
    models.Department,
    "department_ids",
    "departments",
    "department",
)
SIMULATIONS = Slot(
    "simulations",
    SlotKind.CATALOG,
    models.SimulationLink,
    models.Simulation,
    "simulation_ids",
    "simulations",
    "simulation",
)
PROFILES = Slot(
    "profiles",
    SlotKind.CATALOG,
    models.ProfileLink,
    models.Profile,
    "profile_ids",
    "profiles",
    "profile",
)
SIMULATION_POSITIONS = Slot(
    "simulation_positions",
    SlotKind.VALUE,
    models.SimulationPositionLink,
    models.SimulationPosition,
    "simulation_position_ids",
    "simulation_positions",
    "simulation position",
)
SIMULATION_AVAILABILITY = Slot(
    "simulation_availability",
    SlotKind.VALUE,
    models.SimulationAvailabilityLink,
    models.SimulationAvailability,
    "simulation_availability_ids",
    "simulation_availability",
    "simulation availability window",
)
PROFILE_PERSONAS = Slot(
    "profile_personas",
    SlotKind.VALUE,
    models.ProfilePersonaLink,
    models.ProfilePersona,
    "profile_persona_ids",
    "profile_personas",
    "profile persona",
)

# In form order: this is also the order of DraftFormState.pending_ids.
SLOTS: tuple[Slot, ...] = (
    NAME,
    DESCRIPTION,
    FLAGS,
    DEPARTMENTS,
    SIMULATIONS,
    PROFILES,
    SIMULATION_POSITIONS,
    SIMULATION_AVAILABILITY,
    PROFILE_PERSONAS,
)
BY_NAME = {slot.name: slot for slot in SLOTS}

# Which catalog slot a value slot's items belong to (rule 6), and the item's parent field.
PARENTS: dict[str, tuple[Slot, str]] = {
    SIMULATION_POSITIONS.name: (SIMULATIONS, "simulation"),
    SIMULATION_AVAILABILITY.name: (SIMULATIONS, "simulation"),
    PROFILE_PERSONAS.name: (PROFILES, "profile"),
}

# Pseudo-paths of update_mask beside the slots.
ACTIVE_PATH = "active"  # clears only the cohort_active selection
PENDING_PATH = "pending_ids"


def _mask_paths() -> dict[str, str]:
    paths = {PENDING_PATH: PENDING_PATH, ACTIVE_PATH: ACTIVE_PATH}
    for slot in SLOTS:
        for path in (slot.name, slot.ids_field, slot.values_field):
            if path:
                paths[path] = slot.name
    return paths


# update_mask path -> the slot (or pseudo-path) it clears.
MASK_PATHS: dict[str, str] = _mask_paths()
