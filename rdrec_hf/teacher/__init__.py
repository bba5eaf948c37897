"""Rationale distillation: a teacher LM turns each review into a user-preference and an item-attribute sentence."""

from .backends import (
    OpenAICompatibleTeacher,
    Sampling,
    Teacher,
    TeacherAnswer,
    TeacherRequest,
    TransformersTeacher,
    default_teacher_path,
    load_teacher,
)
from .distillation_config import DistillationConfig, Quantization, TeacherBackendType
from .generator import DistillationSummary, RationaleGenerator, read_provenance
from .parsing import ParsedAnswer, RationaleStatus, parse_answer
from .prompts import PROMPT_VERSION, RationaleField

__all__ = [
    "DistillationConfig",
    "DistillationSummary",
    "OpenAICompatibleTeacher",
    "PROMPT_VERSION",
    "ParsedAnswer",
    "Quantization",
    "RationaleField",
    "RationaleGenerator",
    "RationaleStatus",
    "Sampling",
    "Teacher",
    "TeacherAnswer",
    "TeacherBackendType",
    "TeacherRequest",
    "TransformersTeacher",
    "default_teacher_path",
    "load_teacher",
    "parse_answer",
    "read_provenance",
]
