"""Serving a model: the Inference Endpoints handler (:mod:`.handler`) and the local server (:mod:`.server`,
``scimult-hf serve``)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "handler": ["EndpointHandler", "RequestError"],
        "server": ["make_app", "serve"],
    },
)
