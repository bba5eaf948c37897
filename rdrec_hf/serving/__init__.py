"""Serving a trained student: the Inference Endpoints handler, the Gradio page, exported Hub folders and
batch recommendation.

``handler.py`` is copied into exported model folders (it imports only torch and transformers); ``export.py``
writes those folders and the Space; ``app.py`` is the Gradio page; ``batch.py`` ranks whole lists of users
into JSON lines. Each is imported on first use: the handler needs no Gradio, the batch writer no Hub.
"""

import importlib
from typing import TYPE_CHECKING

_MODULE_OF = {
    "EndpointHandler": "handler",
    "USER_HISTORIES_FILE": "handler",
    "export_model": "export",
    "write_space": "export",
    "write_user_histories": "export",
    "RecommenderPage": "app",
    "build_app": "app",
    "RecommendationSummary": "batch",
    "UserRecommendations": "batch",
    "recommend_users": "batch",
    "write_recommendations": "batch",
}
__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:
    from .app import RecommenderPage, build_app  # noqa: F401
    from .batch import RecommendationSummary, UserRecommendations, recommend_users, write_recommendations  # noqa: F401
    from .export import export_model, write_space, write_user_histories  # noqa: F401
    from .handler import USER_HISTORIES_FILE, EndpointHandler  # noqa: F401


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
