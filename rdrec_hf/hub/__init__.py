"""What goes on the Hub beside a model: the Inference Endpoints handler and a Gradio Space.

``handler.py`` is copied into exported model folders (it imports only torch and transformers);
``export.py`` writes those folders and the Space.
"""

from .export import export_model, write_space, write_user_histories
from .handler import USER_HISTORIES_FILE, EndpointHandler

__all__ = ["USER_HISTORIES_FILE", "EndpointHandler", "export_model", "write_space", "write_user_histories"]
