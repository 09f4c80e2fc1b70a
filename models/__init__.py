"""The model zoo: reference models of the field, by name. `edgecc models` lists them."""

from edgecc.models.zoo import ModelSpec, count_params_and_macs, get_model, list_models, register_model

__all__ = ["ModelSpec", "count_params_and_macs", "get_model", "list_models", "register_model"]
